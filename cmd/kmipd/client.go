package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/kmipd/kmipd/certs"
	"github.com/kmipd/kmipd/daemon"
	"github.com/kmipd/kmipd/kmipclient"
)

// `kmipd client`: a KMIP client for people, over package kmipclient. This
// file holds the dispatch, the connection flags, output and exit codes; the
// subcommands are in client_cmds.go.

// Exit codes of `kmipd client`, documented in its usage.
const (
	exitFailed = 1 // the server refused the operation
	exitUsage  = 2 // the command line, or an input it names, is wrong
	exitConn   = 3 // no valid answer: connection, TLS, timeout, malformed response
	exitOutput = 4 // done, but the result could not be written
)

// clientCmd is one subcommand: its synopsis after "kmipd client NAME", a
// line of help, and the function that defines its flags, parses and runs.
type clientCmd struct {
	args, help string
	run        func(ctx context.Context, e *clientEnv, args []string) error
}

var clientCmds = map[string]clientCmd{
	"create":          {"[-alg AES] [-length BITS] [-name NAME] [-usage LIST] [-activate]", "create a symmetric key", clientCreate},
	"create-key-pair": {"-alg RSA|EC [-length BITS | -curve P-256] [-name NAME] [-usage LIST] [-activate]", "create a public/private key pair", clientCreateKeyPair},
	"register":        {"-type TYPE [-input-format raw|hex] [-alg AES] [-name NAME] [-activate] FILE|-", "register an object from a file", clientRegister},
	"get":             {"[-format auto|raw|pem|hex] [-key-format FORMAT] [-out FILE] UID", "write an object's material to a file or stdout", clientGet},
	"locate":          {"[-name NAME] [-type TYPE] [-alg ALG] [-state STATE] [-max N]", "find objects by attributes", clientLocate},
	"get-attributes":  {"UID [NAME...]", "list an object's attributes", clientGetAttributes},
	"activate":        {"UID", "make a Pre-Active object Active", clientActivate},
	"revoke":          {"[-reason REASON] [-message TEXT] UID", "revoke an object (Deactivated, or Compromised)", clientRevoke},
	"destroy":         {"UID", "destroy an object's material (revoke an Active one first)", clientDestroy},
	"encrypt":         {"[-mode gcm|cbc|ctr|ecb] [-iv HEX] [-aad HEX] [-in FILE] [-out FILE] UID", "encrypt stdin to stdout; prints the IV and tag on stderr", clientEncrypt},
	"decrypt":         {"[-mode gcm|cbc|ctr|ecb] -iv HEX [-tag HEX] [-aad HEX] [-in FILE] [-out FILE] UID", "decrypt stdin to stdout", clientDecrypt},
	"query":           {"", "the server's operations, object types and vendor", clientQuery},
}

const clientUsageTail = `
Connection (every subcommand): -dir DIR takes the address, CA and client
certificate of a 'kmipd dev' folder (DIR/kmipd.hcl, DIR/pki); otherwise give
-addr HOST:PORT -ca FILE -cert FILE -key FILE (each also overrides -dir's).
-json prints JSON for scripts instead of tables; -timeout bounds each request.
Byte strings are hex in tables and JSON; key material is printed only by get
and decrypt.

Exit codes: 0 success; 1 the server refused the operation (its Result Reason
and message are printed); 2 usage: the command line or an input file is wrong;
3 connection: no valid answer (dial, TLS, timeout, malformed response);
4 the operation succeeded but its output could not be written.

Every subcommand answers -h.
`

func clientUsage(w io.Writer) {
	fmt.Fprint(w, "Usage: kmipd client SUBCOMMAND [flags] [arguments]\n\nSubcommands:\n")
	names := make([]string, 0, len(clientCmds))
	for n := range clientCmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-16s %s\n", n, clientCmds[n].help)
	}
	fmt.Fprint(w, clientUsageTail)
}

// cmdClient runs `kmipd client` and returns its exit code.
func cmdClient(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		clientUsage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		clientUsage(stdout)
		return 0
	}
	cmd, ok := clientCmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "kmipd client: unknown subcommand %q\n\n", args[0])
		clientUsage(stderr)
		return exitUsage
	}
	e := newClientEnv(args[0], cmd, stdin, stdout, stderr)
	defer e.close()
	return e.exit(cmd.run(ctx, e, args[1:]))
}

// clientEnv is what every subcommand shares: its flag set with the
// connection and output flags, its streams and, once dialled, the client.
type clientEnv struct {
	name   string
	fs     *flag.FlagSet
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer

	dir, addr, ca, cert, key string
	timeout                  time.Duration
	json                     bool

	client *kmipclient.Client
}

// commonFlags are the flags every subcommand has; its usage lists them apart.
var commonFlags = map[string]bool{"dir": true, "addr": true, "ca": true, "cert": true, "key": true, "timeout": true, "json": true}

func newClientEnv(name string, cmd clientCmd, stdin io.Reader, stdout, stderr io.Writer) *clientEnv {
	e := &clientEnv{name: name, stdin: stdin, stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("client "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&e.dir, "dir", "", "a kmipd dev folder: its address, CA and client certificate")
	fs.StringVar(&e.addr, "addr", "", "server address HOST:PORT")
	fs.StringVar(&e.ca, "ca", "", "CA certificate (PEM) that signed the server's certificate")
	fs.StringVar(&e.cert, "cert", "", "client certificate (PEM)")
	fs.StringVar(&e.key, "key", "", "client private key (PEM)")
	fs.DurationVar(&e.timeout, "timeout", kmipclient.DefaultTimeout, "bound on each request")
	fs.BoolVar(&e.json, "json", false, "print JSON instead of tables")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: kmipd client %s %s\n\n%s.\n", name, cmd.args, upperFirst(cmd.help))
		var own strings.Builder
		fs.VisitAll(func(f *flag.Flag) {
			if !commonFlags[f.Name] {
				fmt.Fprintf(&own, "  -%s\n    \t%s", f.Name, f.Usage)
				if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
					fmt.Fprintf(&own, " (default %s)", f.DefValue)
				}
				own.WriteString("\n")
			}
		})
		if own.Len() > 0 {
			fmt.Fprintf(fs.Output(), "\nFlags:\n%s", own.String())
		}
		fmt.Fprint(fs.Output(), "\nConnection and output: -dir DIR | -addr HOST:PORT -ca FILE -cert FILE -key FILE; -json; -timeout D (default 30s)\nExit codes: 0 ok, 1 refused by the server, 2 usage, 3 connection, 4 output not written ('kmipd client -h')\n")
	}
	e.fs = fs
	return e
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// parse parses args, flags and positional arguments in any order, and
// checks there are between min and max positional ones (max < 0: any).
func (e *clientEnv) parse(args []string, min, max int) ([]string, error) {
	var pos []string
	for {
		if err := e.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errUsage // the flag package has said why
		}
		rest := e.fs.Args()
		if len(rest) == 0 {
			break
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			pos = append(pos, rest...) // after "--", all are arguments
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	if len(pos) < min || (max >= 0 && len(pos) > max) {
		want := fmt.Sprintf("%d", min)
		switch {
		case max < 0:
			want = fmt.Sprintf("at least %d", min)
		case max != min:
			want = fmt.Sprintf("%d to %d", min, max)
		}
		fmt.Fprintf(e.stderr, "kmipd client %s: %s argument(s) expected, got %d\n", e.name, want, len(pos))
		e.fs.Usage()
		return nil, errUsage
	}
	return pos, nil
}

// usageError is a mistake in the command line or an input it names.
func (e *clientEnv) usageError(format string, args ...any) error {
	return &clientError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// clientError carries its exit code.
type clientError struct {
	code int
	err  error
}

func (c *clientError) Error() string { return c.err.Error() }
func (c *clientError) Unwrap() error { return c.err }

func outputError(err error) error { return &clientError{code: exitOutput, err: err} }

// exit prints err, if any, and returns the exit code it calls for.
func (e *clientEnv) exit(err error) int {
	var ce *clientError
	var ke *kmipclient.Error
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return exitUsage
	case errors.As(err, &ce):
		fmt.Fprintf(e.stderr, "kmipd client %s: %v\n", e.name, err)
		return ce.code
	case errors.As(err, &ke):
		if ke.Kind == kmipclient.Failed {
			fmt.Fprintf(e.stderr, "kmipd client %s: refused by the server: %v\n", e.name, err)
		} else {
			fmt.Fprintf(e.stderr, "kmipd client %s: %v\n", e.name, err)
		}
		if e.json {
			e.printJSONError(ke)
		}
		if ke.Kind == kmipclient.Failed {
			return exitFailed
		}
		return exitConn
	}
	fmt.Fprintf(e.stderr, "kmipd client %s: %v\n", e.name, err)
	return exitFailed
}

func (e *clientEnv) printJSONError(ke *kmipclient.Error) {
	v := map[string]any{"error": ke.Kind.String(), "message": ke.Error()}
	if ke.Kind == kmipclient.Failed {
		v["result_reason"] = ke.Reason.String()
		v["result_message"] = ke.Message
	}
	_ = json.NewEncoder(e.stdout).Encode(v)
}

// connect builds the client from -dir or the explicit flags.
func (e *clientEnv) connect() (*kmipclient.Client, error) {
	addr, ca, cert, key := e.addr, e.ca, e.cert, e.key
	if e.dir != "" {
		c, err := daemon.LoadConfig(filepath.Join(e.dir, daemon.DevConfigFile))
		if err != nil {
			return nil, e.usageError("-dir %s is not a kmipd dev folder: %v", e.dir, err)
		}
		pki := filepath.Join(e.dir, daemon.DevPKIDir)
		addr = orElse(addr, dialable(c.Listener.Address))
		ca = orElse(ca, filepath.Join(pki, certs.CACertFile))
		cert = orElse(cert, filepath.Join(pki, certs.ClientCertFile))
		key = orElse(key, filepath.Join(pki, certs.ClientKeyFile))
	}
	if addr == "" || ca == "" || cert == "" || key == "" {
		return nil, e.usageError("give -dir DIR (a kmipd dev folder), or -addr, -ca, -cert and -key")
	}
	tc, err := kmipclient.LoadTLS(ca, cert, key)
	if err != nil {
		return nil, e.usageError("%v", err)
	}
	c, err := kmipclient.New(kmipclient.Config{Addr: addr, TLS: tc, Timeout: e.timeout})
	if err != nil {
		return nil, e.usageError("%v", err)
	}
	e.client = c
	return c, nil
}

func (e *clientEnv) close() {
	if e.client != nil {
		_ = e.client.Close()
	}
}

// orElse is a unless it is empty, else b.
func orElse(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// dialable turns a listen address into one to dial: a wildcard host is
// this machine.
func dialable(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}

// emit prints v as JSON with -json, else runs human.
func (e *clientEnv) emit(v any, human func(w io.Writer)) error {
	if e.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return outputError(err)
		}
		return nil
	}
	human(e.stdout)
	return nil
}

// readInput reads a file ("-" or "" for stdin), at most maxInput bytes.
func (e *clientEnv) readInput(path string) ([]byte, error) {
	r := e.stdin
	name := "stdin"
	if path != "" && path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, e.usageError("%v", err)
		}
		defer f.Close()
		r, name = f, path
	}
	b, err := io.ReadAll(io.LimitReader(r, maxInput+1))
	if err != nil {
		return nil, e.usageError("reading %s: %v", name, err)
	}
	if len(b) > maxInput {
		clear(b)
		return nil, e.usageError("%s holds more than %d bytes", name, maxInput)
	}
	return b, nil
}

// maxInput bounds what one request may carry from a file or stdin: more
// than any server's message cap (kmipd's is 1 MiB unless configured).
const maxInput = 16 << 20

// toStdout reports whether an output path means stdout.
func toStdout(path string) bool { return path == "" || path == "-" }

// writeOutput writes b to path (created 0600: it may be key material), or
// to stdout when path is "" or "-".
func (e *clientEnv) writeOutput(path string, b []byte) error {
	if toStdout(path) {
		if _, err := e.stdout.Write(b); err != nil {
			return outputError(err)
		}
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return outputError(err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return outputError(err)
	}
	if err := f.Close(); err != nil {
		return outputError(err)
	}
	return nil
}
