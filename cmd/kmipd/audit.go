package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/kmipd/kmipd/audit"
)

const auditUsage = "Usage:\n  kmipd audit verify FILE...   (rotated files oldest first: audit.log.2 audit.log.1 audit.log)\n"

// cmdAudit runs `kmipd audit verify FILE...`: it checks each file's hash
// chain and, with several files, that each continues the one before. It
// names the first changed, removed, inserted, reordered or cut line.
func cmdAudit(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, auditUsage)
		return errUsage
	}
	switch args[0] {
	case "verify":
	case "-h", "-help", "--help":
		fmt.Fprint(stdout, auditUsage)
		return nil
	default:
		fmt.Fprintf(stderr, "kmipd audit: unknown command %q\n%s", args[0], auditUsage)
		return errUsage
	}
	fs := newFlagSet("audit verify", "audit verify FILE...", stderr)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errUsage
	}
	var prev *audit.Report
	for _, path := range fs.Args() {
		rep, err := verifyAuditFile(path, prev)
		if err != nil {
			var p *audit.Problem
			if errors.As(err, &p) {
				return fmt.Errorf("%s:%d: %s: %s", path, p.Line, p.Kind, p.Detail)
			}
			return err
		}
		fmt.Fprintf(stdout, "%s: %s\n", path, describe(rep))
		prev = &rep
	}
	if prev.LastHash == "" {
		fmt.Fprintln(stdout, "intact; no records")
		return nil
	}
	fmt.Fprintf(stdout, "intact; last seq %d, last hash %s (keep it: lines cut from the end show only against it)\n", prev.LastSeq, prev.LastHash)
	return nil
}

func verifyAuditFile(path string, prev *audit.Report) (audit.Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return audit.Report{}, err
	}
	defer f.Close()
	if prev == nil {
		return audit.Verify(f)
	}
	return audit.VerifyAfter(*prev, f)
}

func describe(r audit.Report) string {
	if r.Records == 0 {
		return "empty"
	}
	from := "from the start of the chain"
	if r.FirstPrev != audit.GenesisHash {
		from = "continuing hash " + r.FirstPrev[:16] + "…"
	}
	end := "ends with a close record"
	if !r.Closed {
		end = "no close record at the end (still being written, or the writer stopped)"
	}
	return fmt.Sprintf("%d records, seq %d-%d, %s; opened %d time(s); %s", r.Records, r.FirstSeq, r.LastSeq, from, r.Opens, end)
}
