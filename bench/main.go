// Package bench is kmipd's KMIP load generator (`kmipd bench`). It speaks
// plain KMIP 1.x TTLV over mutual TLS, so the same run can be pointed at
// kmipd and at any other KMIP server (PyKMIP's, for the side-by-side in
// scripts/bench.sh), and reports throughput, latency percentiles from a
// bounded histogram and, for kmipd, HSM calls and sessions scraped from its
// telemetry. `kmipd bench report` turns several runs into a comparison.
package bench

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/kmipd/kmipd/certs"
)

const usage = `kmipd bench -addr HOST:PORT -ca CA (-cert CERT -key KEY | -owners K -pki DIR)
            [-mode persistent|reconnect] [-workers N] [-warmup D] [-duration D]
            [-mix get|create|create-get-destroy|register-get|encrypt|locate-page] [-procs N] [-json] ...
kmipd bench report [-md FILE] [-json FILE] RESULT.json...`

// Main runs `kmipd bench` with args (the words after "bench") and returns
// the exit status: 0 done (errors during the run are reported, not fatal),
// 1 failed (setup, connection, output), 2 usage.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "report" {
		return reportMain(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage:\n  %s\n\nFlags:\n", usage)
		fs.PrintDefaults()
	}
	var (
		cfg        Config
		caFile     = fs.String("ca", "", "CA certificate (PEM) that signed the server's certificate (default: DIR/ca.crt with -pki)")
		certFile   = fs.String("cert", "", "client certificate (PEM), unless -owners")
		keyFile    = fs.String("key", "", "client private key (PEM), unless -owners")
		owners     = fs.Int("owners", 0, "mint this many client identities from the CA in -pki and spread the workers over them")
		pkiDir     = fs.String("pki", "", "folder holding ca.crt and ca.key, for -owners")
		tlsMax     = fs.String("tls-max", "1.3", "highest TLS version offered: 1.2 or 1.3")
		jsonOut    = fs.Bool("json", false, "print the result as JSON on stdout")
		quiet      = fs.Bool("quiet", false, "no progress line on stderr")
		cpuProfile = fs.String("cpuprofile", "", "write this process's CPU profile (the load generator's own cost) to FILE")
		procs      = fs.Int("procs", 0, "CPUs the load generator runs on at once (GOMAXPROCS; 0: Go's default, every CPU). On a machine shared with the server under test, leave the server its share")
	)
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:5696", "KMIP server address; a comma-separated list spreads the workers over a cluster's replicas")
	fs.StringVar(&cfg.Mode, "mode", Persistent, "persistent (one connection per worker) or reconnect (one per request)")
	fs.StringVar(&cfg.Mix, "mix", MixGet, "get, create, create-get-destroy, register-get, encrypt or locate-page (locate-name: kmipd bench scale)")
	fs.IntVar(&cfg.Workers, "workers", 8, "concurrent clients")
	fs.DurationVar(&cfg.Warmup, "warmup", DefaultWarmup, "run the mix this long first, unmeasured, so connections, the server's heap and its caches settle; none unless given if -duration is 0")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "measured phase length (after setup and warm-up)")
	fs.Uint64Var(&cfg.MaxOps, "ops", 0, "also stop after this many measured requests (0: no limit)")
	fs.IntVar(&cfg.PoolSize, "pool", 64, "keys created per owner for the get mix")
	fs.IntVar(&cfg.DataSize, "data-size", 64, "plaintext bytes per Encrypt")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Second, "per request, TLS handshake included")
	fs.StringVar(&cfg.Version, "kmip-version", "1.2", "KMIP protocol version in request headers (1.0 … 1.4)")
	fs.StringVar(&cfg.MetricsURL, "metrics", "", "kmipd telemetry URL (http://HOST:PORT/metrics): report HSM calls per op and peak sessions; a comma-separated list sums a cluster's replicas")
	fs.StringVar(&cfg.Label, "label", "", "name of the server in the output (e.g. kmipd, pykmip)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "kmipd bench: unexpected arguments %v\n", fs.Args())
		fs.Usage()
		return 2
	}
	if *caFile == "" && *pkiDir != "" {
		*caFile = filepath.Join(*pkiDir, certs.CACertFile)
	}
	if *caFile == "" || (*owners <= 0 && (*certFile == "" || *keyFile == "")) || (*owners > 0 && *pkiDir == "") {
		fmt.Fprintln(stderr, "kmipd bench: need -ca, and -cert/-key or -owners with -pki")
		fs.Usage()
		return 2
	}
	if cfg.Warmup < 0 {
		fmt.Fprintln(stderr, "kmipd bench: -warmup must not be negative")
		return 2
	}
	if *procs < 0 {
		fmt.Fprintln(stderr, "kmipd bench: -procs must not be negative")
		return 2
	}
	if *procs > 0 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(*procs))
	}
	warmupSet := false
	fs.Visit(func(f *flag.Flag) { warmupSet = warmupSet || f.Name == "warmup" })
	if !warmupSet && cfg.Duration <= 0 {
		// A run bounded by -ops alone measures exactly that many
		// requests and nothing else, unless asked.
		cfg.Warmup = 0
	}
	maxTLS, ok := map[string]uint16{"1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13}[*tlsMax]
	if !ok {
		fmt.Fprintf(stderr, "kmipd bench: -tls-max %q: want 1.2 or 1.3\n", *tlsMax)
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "kmipd bench: %v\n", err)
		return 1
	}
	ids, err := identities(*certFile, *keyFile, *owners, *pkiDir)
	if err != nil {
		return fail(err)
	}
	base, err := clientTLS(*caFile, firstAddr(cfg.Addr), maxTLS)
	if err != nil {
		return fail(err)
	}
	for _, id := range ids {
		c := base.Clone()
		c.Certificates = []tls.Certificate{id}
		cfg.TLS = append(cfg.TLS, c)
	}
	if !*quiet {
		cfg.Progress = stderr
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fail(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fail(err)
		}
		defer pprof.StopCPUProfile()
	}
	res, err := Run(ctx, cfg)
	if err != nil && res == nil {
		return fail(err)
	}
	if *jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return fail(err)
		}
	} else {
		res.WriteText(stdout)
	}
	if err != nil {
		return fail(err) // interrupted: the partial result was printed
	}
	return 0
}

// clientTLS is the configuration shared by every identity: the server's CA,
// the server name from addr, TLS 1.2 at least. No session cache is set, so
// reconnect mode makes full handshakes as Barbican's client does; the
// server's chain is still verified only once per distinct chain (verify.go),
// as that work is the client's, not the server's being measured.
func clientTLS(caFile, addr string, maxTLS uint16) (*tls.Config, error) {
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("%s: no PEM certificate", caFile)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("-addr %q: %w", addr, err)
	}
	cfg := &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12, MaxVersion: maxTLS}
	verifyOnce(cfg)
	return cfg, nil
}

// identities returns the client certificates to use: the one given, or n
// fresh ones minted from the CA in pkiDir. Each minted identity is a new
// key pair, hence a new owner to kmipd (SHA-256 of the SPKI), and has its
// own common name, hence a new owner to PyKMIP; the random suffix keeps
// runs from sharing owners with earlier runs.
func identities(certFile, keyFile string, n int, pkiDir string) ([]tls.Certificate, error) {
	if n <= 0 {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		return []tls.Certificate{c}, nil
	}
	ca, err := certs.LoadCA(pkiDir, certs.Options{})
	if err != nil {
		return nil, err
	}
	var sfx [4]byte
	_, _ = rand.Read(sfx[:])
	out := make([]tls.Certificate, 0, n)
	for i := range n {
		iss, err := ca.IssueClient(fmt.Sprintf("bench-%s-%d", hex.EncodeToString(sfx[:]), i))
		if err != nil {
			return nil, err
		}
		out = append(out, iss.TLS())
	}
	return out, nil
}
