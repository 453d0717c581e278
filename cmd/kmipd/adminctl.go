package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"

	"github.com/kmipd/kmipd/admin"
	"github.com/kmipd/kmipd/backup"
	"github.com/kmipd/kmipd/daemon"
	"github.com/kmipd/kmipd/hsm"
	"github.com/kmipd/kmipd/storage"
)

const adminUsage = `Usage:
  kmipd admin status -config FILE [-json]
  kmipd admin backup -config FILE -out FILE
  kmipd admin rotate-pkek -config FILE (-owner ID | -all) [-json]
  kmipd admin rotate-mkek -config FILE [-label LABEL] [-destroy-old] [-json]
  kmipd admin rotate-hmac -config FILE [-label LABEL] [-destroy-old] [-json]
  kmipd admin reindex -config FILE (-owner ID | -all) [-json]
  kmipd restore -config FILE -in FILE      (offline: the server must be stopped)

admin commands talk to the running server through the admin socket its
configuration names (admin { socket = PATH }).
`

func cmdAdmin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, adminUsage)
		return errUsage
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, adminUsage)
		return nil
	case "status", "backup", "rotate-pkek", "rotate-mkek", "rotate-hmac", "reindex":
	default:
		fmt.Fprintf(stderr, "kmipd admin: unknown command %q\n\n%s", sub, adminUsage)
		return errUsage
	}
	fs := newFlagSet("admin "+sub, map[string]string{
		"status":      "admin status -config FILE [-json]",
		"backup":      "admin backup -config FILE -out FILE",
		"rotate-pkek": "admin rotate-pkek -config FILE (-owner ID | -all) [-json]",
		"rotate-mkek": "admin rotate-mkek -config FILE [-label LABEL] [-destroy-old] [-json]",
		"rotate-hmac": "admin rotate-hmac -config FILE [-label LABEL] [-destroy-old] [-json]",
		"reindex":     "admin reindex -config FILE (-owner ID | -all) [-json]",
	}[sub], stderr)
	cfgPath := fs.String("config", "", "the running server's kmipd.hcl (required)")
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	out := fs.String("out", "", "backup file to write (backup)")
	owner := fs.String("owner", "", "owner identity whose pKEK to rotate (rotate-pkek) or whose index to rebuild (reindex)")
	all := fs.Bool("all", false, "every owner's (rotate-pkek, reindex)")
	label := fs.String("label", "", "the new master key's label (rotate-mkek, rotate-hmac; default: the configured one + /gen-N)")
	destroyOld := fs.Bool("destroy-old", false, "destroy the old master key instead of disabling it (rotate-mkek, rotate-hmac)")
	if err := parseFlags(fs, rest); err != nil {
		return err
	}
	if *cfgPath == "" || (sub == "backup" && *out == "") || ((sub == "rotate-pkek" || sub == "reindex") && (*owner == "") == !*all) {
		fs.Usage()
		return errUsage
	}
	socket, err := adminSocket(*cfgPath)
	if err != nil {
		return err
	}
	switch sub {
	case "status":
		raw, err := admin.Call(ctx, socket, "status", nil, nil, nil)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, raw)
		}
		var s admin.Status
		if err := json.Unmarshal(raw, &s); err != nil {
			return err
		}
		s.Render(stdout)
		return nil
	case "backup":
		n, err := adminBackup(ctx, socket, *out)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "backup of %d sealed records written to %s\n", n, *out)
		return nil
	case "reindex":
		return adminReindex(ctx, socket, daemon.ReindexArgs{Owner: *owner, All: *all}, *asJSON, stdout, stderr)
	case "rotate-mkek", "rotate-hmac":
		return adminRun(ctx, socket, sub, daemon.RotateMasterArgs{Label: *label, DestroyOld: *destroyOld}, *asJSON, stdout, stderr,
			func(res daemon.RotateMasterResult) {
				fmt.Fprintf(stdout, "%s: %s -> %s, %d pKEK record entries moved%s; old key: %s\n", res.Kind, res.From, res.To, res.Entries, resumedNote(res.Resumed), res.Retired)
				if res.Reminder != "" {
					fmt.Fprintln(stdout, res.Reminder)
				}
			})
	}
	return adminRun(ctx, socket, "rotate-pkek", daemon.RotatePKEKArgs{Owner: *owner, All: *all}, *asJSON, stdout, stderr,
		func(res daemon.RotatePKEKResult) {
			for _, o := range res.Owners {
				fmt.Fprintf(stdout, "%s: pKEK generation %d -> %d, %d objects resealed%s\n", o.Owner, o.From, o.To, o.Resealed, resumedNote(o.Resumed))
			}
			if len(res.Owners) == 0 {
				fmt.Fprintln(stdout, "no owner has a pKEK yet: nothing to rotate")
			}
		})
}

// adminReindex asks the server to rebuild blind indexes and prints what
// each rebuild did.
func adminReindex(ctx context.Context, socket string, args daemon.ReindexArgs, asJSON bool, stdout, stderr io.Writer) error {
	return adminRun(ctx, socket, "reindex", args, asJSON, stdout, stderr, func(res daemon.ReindexResult) {
		for _, o := range res.Owners {
			fmt.Fprintf(stdout, "%s: index rebuilt, %d objects, %d entries written, %d removed, %.3f s\n", o.Owner, o.Objects, o.Written, o.Removed, o.Seconds)
		}
		if len(res.Owners) == 0 {
			fmt.Fprintln(stdout, "no owner has a pKEK yet: nothing to index")
		}
	})
}

// adminRun calls a long-running admin command, drawing its progress on
// stderr, and prints its answer: as JSON with -json, else through text.
func adminRun[R any](ctx context.Context, socket, op string, args any, asJSON bool, stdout, stderr io.Writer, text func(R)) error {
	raw, err := admin.Call(ctx, socket, op, args, progressBar(stderr), nil)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(stdout, raw)
	}
	var res R
	if err := json.Unmarshal(raw, &res); err != nil {
		return err
	}
	text(res)
	return nil
}

func resumedNote(resumed bool) string {
	if resumed {
		return " (resumed an interrupted rotation)"
	}
	return ""
}

// adminSocket reads the configuration only for its admin block.
func adminSocket(path string) (string, error) {
	c, err := daemon.LoadConfig(path)
	if err != nil {
		return "", err
	}
	if c.Admin == nil {
		return "", fmt.Errorf("%s has no admin block: the server offers no admin socket", path)
	}
	return c.Admin.Socket, nil
}

func printJSON(w io.Writer, raw json.RawMessage) error {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// progressBar draws progress lines on w (stderr), one line redrawn in place.
func progressBar(w io.Writer) func(admin.Progress) {
	return func(p admin.Progress) {
		const width = 30
		fill := 0
		if p.Total > 0 {
			fill = int(int64(width) * p.Done / p.Total)
		}
		bar := make([]byte, width)
		for i := range bar {
			bar[i] = '.'
			if i < fill {
				bar[i] = '#'
			}
		}
		fmt.Fprintf(w, "\r%-40.40s [%s] %d/%d", p.What, bar, p.Done, p.Total)
		if p.Done >= p.Total {
			fmt.Fprintln(w)
		}
	}
}

// adminBackup streams the backup into a temporary file beside out and
// renames it into place once it reads back whole: out is either the
// complete backup or untouched.
func adminBackup(ctx context.Context, socket, out string) (int, error) {
	f, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-")
	if err != nil {
		return 0, err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // gone after the rename; removes a failed attempt
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return 0, err
	}
	if _, err := admin.Call(ctx, socket, "backup", nil, nil, f); err != nil {
		f.Close()
		return 0, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return 0, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return 0, err
	}
	_, recs, err := backup.Read(f)
	f.Close()
	if err != nil {
		return 0, fmt.Errorf("the server's backup did not arrive whole: %w", err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return 0, err
	}
	return len(recs), nil
}

// cmdRestore writes a backup into the configured store, which must be
// empty, with the server stopped.
func cmdRestore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("restore", "restore -config FILE -in FILE", stderr)
	cfgPath := fs.String("config", "", "kmipd.hcl naming the HSM and the (empty) store (required)")
	in := fs.String("in", "", "backup file written by kmipd admin backup (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *cfgPath == "" || *in == "" {
		fs.Usage()
		return errUsage
	}
	c, err := daemon.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	f, err := os.Open(*in)
	if err != nil {
		return err
	}
	defer f.Close()
	hc, err := c.HSMOptions()
	if err != nil {
		return err
	}
	log := daemon.NewLogger(c.Log, stderr)
	h, err := hsm.Open(ctx, hc, log.Named("hsm"))
	if err != nil {
		return err
	}
	defer h.Close()
	st, where, err := openRestoreStore(ctx, c, log)
	if err != nil {
		return err
	}
	defer st.Close()
	n, err := backup.Restore(ctx, st, h, f)
	if err != nil {
		if errors.Is(err, backup.ErrNotEmpty) {
			return fmt.Errorf("%w: %s already holds records; restore only into an empty store", err, where)
		}
		return err
	}
	fmt.Fprintf(stdout, "restored %d sealed records into %s\n", n, where)
	return nil
}

// openRestoreStore opens the store the storage block names, and says where
// it is without the PostgreSQL URL (which may hold a password).
func openRestoreStore(ctx context.Context, c *daemon.Config, log hclog.Logger) (storage.Store, string, error) {
	if c.Storage.Backend == daemon.BackendPostgres {
		url, err := c.PostgresURL()
		if err != nil {
			return nil, "", err
		}
		st, err := storage.OpenPostgres(ctx, storage.PostgresOptions{URL: url}, log.Named("storage"))
		return st, "the PostgreSQL database", err
	}
	syncWrites := true
	st, err := storage.OpenBadger(c.Storage.Path, storage.BadgerOptions{SyncWrites: &syncWrites, GCInterval: -1}, log.Named("storage"))
	if err != nil {
		return nil, "", fmt.Errorf("%w (is kmipd running? restore needs it stopped)", err)
	}
	return st, c.Storage.Path, nil
}
