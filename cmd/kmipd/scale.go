package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/bench"
	"github.com/kmipd/kmipd/certs"
	"github.com/kmipd/kmipd/daemon"
	"github.com/kmipd/kmipd/kmipclient"
)

// cmdBenchScale is `kmipd bench scale`: kmipd holding N objects of one
// owner. It fills DIR (a `kmipd dev` folder, made if missing) up to N
// objects (scale_preload.go), starts `kmipd dev` on it as a child process
// with the default configuration and measures what issue 20 asks: time to
// serving, Get, Locate by Name, Locate with Maximum Items, Create, the
// server's memory and the store's bytes per object.
func cmdBenchScale(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench scale", "bench scale -dir DIR -n N [-workers W] [-duration D] [-json FILE]", stderr)
	dir := fs.String("dir", "", "kmipd dev folder to fill and serve (created if missing; reused and topped up to N)")
	n := fs.Int("n", 10000, "objects the owner holds")
	workers := fs.Int("workers", 16, "concurrent clients in each measured mix")
	fillWorkers := fs.Int("fill-workers", 16, "requests in flight while filling")
	duration := fs.Duration("duration", 10*time.Second, "each mix's measured phase")
	warmup := fs.Duration("warmup", 0, "each mix's warm-up (the server CPU per request then counts the warm-up's CPU too)")
	pageOps := fs.Uint64("page-ops", 20, "Locate with Maximum Items requests measured (one client)")
	procs := fs.Int("procs", 1, "CPUs the load generator runs on at once, as make bench (BENCH_LOAD_PROCS)")
	module := fs.String("hsm-module", defaultSoftHSM, "PKCS#11 module")
	jsonOut := fs.String("json", "", "also write the result as JSON to FILE")
	only := fs.String("mixes", "get,locate-name,locate-page,create", "the measured mixes, in this order")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" || *n <= 0 || *workers <= 0 || *fillWorkers <= 0 {
		fmt.Fprintln(stderr, "bench scale: need -dir, and positive -n, -workers and -fill-workers")
		return errUsage
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	c, err := prepareDev(ctx, *dir, addr, *module, 4, 0, "off", "warn")
	if err != nil {
		return err
	}
	*dir = filepath.Dir(c.Storage.Path)
	res := scaleResult{N: *n, Workers: *workers, GOMAXPROCS: runtime.GOMAXPROCS(0)}
	uids, got, took, err := preload(ctx, *c, *dir, *n, *fillWorkers, stderr)
	if err != nil {
		return fmt.Errorf("preload: %w", err)
	}
	res.Fetched = len(got)
	res.FillSeconds = took.Seconds()
	res.Objects = len(uids)
	if res.StoreBytes, err = dirBytes(c.Storage.Path); err != nil {
		return err
	}
	res.BytesPerObject = float64(res.StoreBytes) / float64(len(uids))
	fmt.Fprintf(stderr, "scale: %d objects, filled in %.1f s this run, %d bytes on disk\n", len(uids), took.Seconds(), res.StoreBytes)

	srv, err := startScaleServer(ctx, *dir, addr, stderr)
	if err != nil {
		return err
	}
	defer srv.stop()
	tc, err := kmipclient.LoadTLS(filepath.Join(*dir, daemon.DevPKIDir, certs.CACertFile),
		filepath.Join(*dir, daemon.DevPKIDir, certs.ClientCertFile), filepath.Join(*dir, daemon.DevPKIDir, certs.ClientKeyFile))
	if err != nil {
		return err
	}
	if res.StartSeconds, err = srv.waitServing(ctx, addr, tc, got[0]); err != nil {
		return err
	}
	res.RSSStartMiB = srv.rssMiB("VmRSS")
	fmt.Fprintf(stderr, "scale: serving %.2f s after start, RSS %.0f MiB\n", res.StartSeconds, res.RSSStartMiB)

	if *procs > 0 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(*procs))
	}
	names := make([]string, len(uids))
	for i := range names {
		names[i] = scaleName(i)
	}
	run := func(mix string, w int, ops uint64, cfg func(*bench.Config)) (scalePhase, error) {
		bc := bench.Config{Addr: addr, TLS: []*tls.Config{benchTLS(tc, addr)}, Mode: bench.Persistent, Mix: mix,
			Workers: w, Duration: *duration, Warmup: *warmup, MaxOps: ops, Label: "kmipd"}
		if ops > 0 {
			bc.Duration, bc.Warmup = 0, 0
		}
		if cfg != nil {
			cfg(&bc)
		}
		cpu0, flt0 := srv.cpuSeconds(), srv.faults()
		r, err := bench.Run(ctx, bc)
		cpu, flt := srv.cpuSeconds()-cpu0, srv.faults()-flt0
		if err != nil {
			return scalePhase{}, fmt.Errorf("%s: %w", mix, err)
		}
		if r.Errors > 0 && mix != bench.MixLocatePage {
			return scalePhase{}, fmt.Errorf("%s: %d of %d requests failed: %v", mix, r.Errors, r.Ops, r.ErrorSamples)
		}
		anon, file, clean := srv.rssMiB("RssAnon"), srv.rssMiB("RssFile"), srv.cleanMiB()
		res.RSSAnonMaxMiB = max(res.RSSAnonMaxMiB, anon)
		res.RSSMaxMiB = max(res.RSSMaxMiB, anon+file)
		fmt.Fprintf(stderr, "scale: %s: %.0f ops/s, p50 %.2f ms, p99 %.2f ms, %d errors %v; kmipd RSS %.0f MiB anonymous + %.0f MiB file (%.0f MiB clean)\n",
			mix, r.OpsPerSec, r.Latency.P50, r.Latency.P99, r.Errors, r.ErrorSamples, anon, file, clean)
		p := phaseOf(r)
		p.ServerCPUMicros = cpu * 1e6 / float64(max(r.Ops, 1))
		p.PageFaults = float64(flt) / float64(max(r.Ops, 1))
		fmt.Fprintf(stderr, "scale: %s: kmipd CPU %.0f µs and %.2f page faults per request\n", mix, p.ServerCPUMicros, p.PageFaults)
		return p, nil
	}
	// Reads first, so each sees exactly the N preloaded objects.
	for _, mix := range strings.Split(*only, ",") {
		var err error
		switch mix {
		case bench.MixGet:
			res.Get, err = run(mix, *workers, 0, func(bc *bench.Config) { bc.UIDs = got })
		case bench.MixLocateName:
			res.LocateByName, err = run(mix, *workers, 0, func(bc *bench.Config) { bc.Names, bc.UIDs = names, got })
		case bench.MixLocatePage:
			res.LocatePage, err = run(mix, 1, *pageOps, func(bc *bench.Config) { bc.Timeout = time.Minute })
		case bench.MixCreate:
			res.Create, err = run(mix, *workers, 0, nil)
		default:
			err = fmt.Errorf("-mixes: unknown mix %q", mix)
		}
		if err != nil {
			return err
		}
	}
	res.RSSPeakMiB = srv.rssMiB("VmHWM")

	fmt.Fprintln(stdout, scaleHeader)
	fmt.Fprintln(stdout, res.row())
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		return os.WriteFile(*jsonOut, append(b, '\n'), 0o644)
	}
	return nil
}

// benchTLS is tc for the load generator, which verifies the server's chain
// once (bench's own setting is made by its command line).
func benchTLS(tc *tls.Config, addr string) *tls.Config {
	c := tc.Clone()
	host, _, _ := net.SplitHostPort(addr)
	c.ServerName = host
	return c
}

type scalePhase struct {
	OpsPerSec float64 `json:"ops_per_sec"`
	P50MS     float64 `json:"p50_ms"`
	P99MS     float64 `json:"p99_ms"`
	Ops       uint64  `json:"ops"`
	Errors    uint64  `json:"errors"`
	// ServerCPUMicros is kmipd's CPU time (user and system) over the
	// whole run of the mix, set-up and warm-up included, per measured
	// request: on cores shared with other work it moves far less than
	// the latencies do.
	ServerCPUMicros float64 `json:"server_cpu_us_per_op"`
	// PageFaults is kmipd's page faults (minor and major) per measured
	// request, counted as its CPU is: first touches of the memory-mapped
	// table files, which a read uses in place, and of heap pages the Go
	// runtime had given back.
	PageFaults float64 `json:"server_page_faults_per_op"`
}

func phaseOf(r *bench.Result) scalePhase {
	return scalePhase{OpsPerSec: r.OpsPerSec, P50MS: r.Latency.P50, P99MS: r.Latency.P99, Ops: r.Ops, Errors: r.Errors}
}

type scaleResult struct {
	N              int        `json:"n"`
	Objects        int        `json:"objects"`
	Fetched        int        `json:"fetched"` // fetched once by the fill: what the Gets read
	Workers        int        `json:"workers"`
	GOMAXPROCS     int        `json:"gomaxprocs"`
	FillSeconds    float64    `json:"fill_seconds"`
	StoreBytes     int64      `json:"store_bytes"`
	BytesPerObject float64    `json:"bytes_per_object"`
	StartSeconds   float64    `json:"start_to_serving_seconds"`
	RSSStartMiB    float64    `json:"rss_start_mib"`
	RSSMaxMiB      float64    `json:"rss_max_mib"`      // after each mix: anonymous + file-backed
	RSSAnonMaxMiB  float64    `json:"rss_anon_max_mib"` // after each mix: anonymous only
	RSSPeakMiB     float64    `json:"rss_peak_mib"`     // VmHWM
	Get            scalePhase `json:"get"`
	LocateByName   scalePhase `json:"locate_by_name"`
	LocatePage     scalePhase `json:"locate_max_items_10"`
	Create         scalePhase `json:"create"`
}

const scaleHeader = "| N | Create ops/s | Create p99 | Get ops/s | Get p99 | Locate by Name p50 / p99 | Locate Max Items 10 p50 / p99 | RSS anonymous / total (max after a mix) / peak | bytes on disk per object | start to serving |\n" +
	"|---:|---:|---:|---:|---:|---|---|---|---:|---:|"

func (r scaleResult) row() string {
	ms := func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) + " ms" }
	return fmt.Sprintf("| %d | %.0f | %s | %.0f | %s | %s / %s | %s / %s | %.0f / %.0f / %.0f MiB | %.0f | %.2f s |",
		r.Objects, r.Create.OpsPerSec, ms(r.Create.P99MS), r.Get.OpsPerSec, ms(r.Get.P99MS),
		ms(r.LocateByName.P50MS), ms(r.LocateByName.P99MS), ms(r.LocatePage.P50MS), ms(r.LocatePage.P99MS),
		r.RSSAnonMaxMiB, r.RSSMaxMiB, r.RSSPeakMiB, r.BytesPerObject, r.StartSeconds)
}

// freeAddr is a 127.0.0.1 address nothing listens on now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// dirBytes is what the files under dir take on disk.
func dirBytes(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512 // allocated, not apparent: badger's files are sparse
		} else {
			n += info.Size()
		}
		return nil
	})
	return n, err
}

// scaleServer is `kmipd dev` on the filled folder, as a child process.
type scaleServer struct {
	cmd     *exec.Cmd
	started time.Time
	log     bytes.Buffer
	exited  chan struct{}
}

func startScaleServer(ctx context.Context, dir, addr string, stderr io.Writer) (*scaleServer, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	s := &scaleServer{exited: make(chan struct{})}
	s.cmd = exec.Command(self, "dev", "-dir", dir, "-addr", addr, "-telemetry-addr", "off", "-log-level", "warn")
	s.cmd.Stdout, s.cmd.Stderr = io.Discard, &s.log
	s.started = time.Now()
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = s.cmd.Wait(); close(s.exited) }()
	return s, nil
}

// waitServing polls with a Get of a preloaded object until it is served,
// and returns the seconds since the process started.
func (s *scaleServer) waitServing(ctx context.Context, addr string, tc *tls.Config, uid string) (float64, error) {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		cl, err := kmipclient.New(kmipclient.Config{Addr: addr, TLS: tc, Timeout: 10 * time.Second})
		if err != nil {
			return 0, err
		}
		_, err = cl.Get(ctx, uid, kmip14.KeyFormatType(0))
		cl.Close()
		if err == nil {
			return time.Since(s.started).Seconds(), nil
		}
		select {
		case <-s.exited:
			return 0, fmt.Errorf("kmipd dev exited before serving: %s", strings.TrimSpace(s.log.String()))
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("kmipd dev not serving after 5 minutes: %w", err)
		}
	}
}

// rssMiB reads a memory figure (VmRSS, VmHWM) of the server process.
func (s *scaleServer) rssMiB(field string) float64 { return s.procMiB("status", field) }

// cleanMiB is how much of the server's resident memory is clean (the
// smaps rollup's Shared_Clean and Private_Clean): pages of mapped files
// that match the disk, which the kernel can drop under pressure without
// writing anything. Nearly all of RssFile is the mapped table files'.
func (s *scaleServer) cleanMiB() float64 {
	return s.procMiB("smaps_rollup", "Shared_Clean", "Private_Clean")
}

// procMiB sums the "Name: N kB" lines of the server's /proc file named by
// names, in MiB; 0 if it cannot be read.
func (s *scaleServer) procMiB(file string, names ...string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", s.cmd.Process.Pid, file))
	if err != nil {
		return 0
	}
	var kb float64
	for _, l := range strings.Split(string(b), "\n") {
		if name, rest, _ := strings.Cut(l, ":"); slices.Contains(names, name) {
			v, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			kb += v
		}
	}
	return kb / 1024
}

// stat is the server's /proc stat fields after the command's closing
// parenthesis (the line's 3rd field on), or nil.
func (s *scaleServer) stat() []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return nil
	}
	if f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:])); len(f) >= 13 {
		return f
	}
	return nil
}

// cpuSeconds is the server's CPU time so far (utime + stime: the line's
// 14th and 15th fields, in clock ticks, USER_HZ 100).
func (s *scaleServer) cpuSeconds() float64 {
	f := s.stat()
	if f == nil {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / 100
}

// faults is the server's page faults so far, minor and major (the line's
// 10th and 12th fields).
func (s *scaleServer) faults() uint64 {
	f := s.stat()
	if f == nil {
		return 0
	}
	minor, _ := strconv.ParseUint(f[7], 10, 64)
	major, _ := strconv.ParseUint(f[9], 10, 64)
	return minor + major
}

// stop ends the server as a signal would, and waits for it.
func (s *scaleServer) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}
