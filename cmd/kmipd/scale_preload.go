package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/hashicorp/go-hclog"

	"github.com/kmipd/kmipd/certs"
	"github.com/kmipd/kmipd/daemon"
	"github.com/kmipd/kmipd/kmipmsg"
	"github.com/kmipd/kmipd/kmipops"
	"github.com/kmipd/kmipd/kmipops/tree"
	"github.com/kmipd/kmipd/server"
)

// The scale benchmark's fill. Objects are made by kmipd's own Processor,
// in this process, for the dev client's identity: each one a Create (an
// AES-256 key with a Name, an Object Group and a usage mask), stored as a
// client's Create stores it, sealed under the owner's pKEK with its blind
// index entries. Only the network is skipped. One in scaleFetched is also
// fetched once in the same batch (a Get: Fresh turns false), so that the
// benchmark's Gets of those are reads, as a key's Gets are after its first;
// the rest are left as created, which halves the fill's work. Badger runs
// with synced writes off meanwhile; closing it flushes everything to disk
// before the server under test opens the folder.

const (
	scaleUIDFile  = "scale-uids"      // one uid per line: preloaded objects
	scaleFillFile = "scale-fill.json" // what the fills took
	scaleGroups   = 16                // Object Groups the objects are spread over
	scaleFetched  = 8                 // one object in this many is fetched by the fill
)

// fetched reports whether the fill fetched the i-th object.
func fetched(i int) bool { return i%scaleFetched == 0 }

// scaleName is the Name of the i-th preloaded object.
func scaleName(i int) string { return "scale-" + strconv.Itoa(i) }

// devCaller is the identity kmipd gives the dev client certificate.
func devCaller(dir string) (kmipops.Caller, error) {
	pki := filepath.Join(dir, daemon.DevPKIDir)
	pair, err := tls.LoadX509KeyPair(filepath.Join(pki, certs.ClientCertFile), filepath.Join(pki, certs.ClientKeyFile))
	if err != nil {
		return kmipops.Caller{}, err
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return kmipops.Caller{}, err
	}
	return kmipops.Caller{Identity: server.Identity(leaf), CommonName: leaf.Subject.CommonName}, nil
}

// preloadRequest is object i's Create, and Get if fetched(i), one batch.
func preloadRequest(i int) *tree.Node {
	a := func(name string, v *tree.Node) *tree.Node {
		v.Tag = kmip14.TagAttributeValue
		return tree.Struct(kmip14.TagAttribute, tree.Text(kmip14.TagAttributeName, name), v)
	}
	create := kmipmsg.Item(kmip14.OperationCreate,
		tree.Enum(kmip14.TagObjectType, uint32(kmip14.ObjectTypeSymmetricKey)),
		tree.Struct(kmip14.TagTemplateAttribute,
			a("Cryptographic Algorithm", tree.Enum(0, uint32(kmip14.CryptographicAlgorithmAES))),
			a("Cryptographic Length", tree.Int(0, 256)),
			a("Cryptographic Usage Mask", tree.Int(0, int32(kmip14.CryptographicUsageMaskEncrypt|kmip14.CryptographicUsageMaskDecrypt))),
			a("Name", tree.Struct(0,
				tree.Text(kmip14.TagNameValue, scaleName(i)),
				tree.Enum(kmip14.TagNameType, uint32(kmip14.NameTypeUninterpretedTextString)))),
			a("Object Group", tree.Text(0, "scale-group-"+strconv.Itoa(i%scaleGroups))),
		))
	items := []*tree.Node{create}
	if fetched(i) {
		items = append(items, kmipmsg.Item(kmip14.OperationGet)) // the Create's uid (ID Placeholder)
	}
	return kmipmsg.Request(kmipmsg.Version{Major: 1, Minor: 2}, kmipmsg.Options{}, items...)
}

// preloadedUID checks resp and returns the Create's uid.
func preloadedUID(resp *tree.Node, i int) (string, error) {
	items := resp.All(kmip14.TagBatchItem)
	if want := map[bool]int{false: 1, true: 2}[fetched(i)]; len(items) != want {
		return "", fmt.Errorf("preload: %d batch items in the response", len(items))
	}
	for _, it := range items {
		if s, _ := it.Child(kmip14.TagResultStatus).EnumValue(); s != uint32(kmip14.ResultStatusSuccess) {
			msg, _ := it.Child(kmip14.TagResultMessage).TextValue()
			return "", fmt.Errorf("preload: request failed: %s", msg)
		}
	}
	uid, ok := items[0].Path(kmip14.TagResponsePayload, kmip14.TagUniqueIdentifier).TextValue()
	if !ok {
		return "", errors.New("preload: Create answered no uid")
	}
	return uid, nil
}

// preload adds objects to dir's store until it holds n of them, with
// workers requests in flight, and returns the first n preloaded uids, those
// of them the fill fetched, and how long this fill took.
func preload(ctx context.Context, c daemon.Config, dir string, n, workers int, progress io.Writer) (uids, got []string, _ time.Duration, _ error) {
	have, haveGot, _, err := readN(dir, n, 0, nil)
	if err != nil && !errors.Is(err, os.ErrNotExist) || len(have) >= n {
		return have, haveGot, 0, err
	}
	start := time.Now()
	caller, err := devCaller(dir)
	if err != nil {
		return nil, nil, 0, err
	}
	c.Storage.SyncWrites = false // the fill only; Close syncs
	c.Audit = nil                // not client traffic
	c.Telemetry, c.Admin = nil, nil
	d, err := daemon.Build(ctx, &c, hclog.NewNullLogger())
	if err != nil {
		return nil, nil, 0, err
	}
	f, err := os.OpenFile(filepath.Join(dir, scaleUIDFile), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		d.Close()
		return nil, nil, 0, err
	}
	out := bufio.NewWriterSize(f, 1<<16)
	var (
		mu    sync.Mutex
		first error
		next  atomic.Int64
		done  atomic.Int64
		wg    sync.WaitGroup
	)
	next.Store(int64(len(have)) - 1)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1))
				if i >= n || ctx.Err() != nil {
					return
				}
				uid, err := preloadedUID(d.Processor().Process(ctx, caller, preloadRequest(i)), i)
				mu.Lock()
				if err != nil && first == nil {
					first = err
				}
				if err == nil {
					// A uid's line order is not its name's: the
					// benchmark picks uids and names at random.
					fmt.Fprintln(out, uid, i)
				}
				mu.Unlock()
				if err != nil {
					next.Store(int64(n)) // stop the others
					return
				}
				done.Add(1)
			}
		}()
	}
	stopProgress := make(chan struct{})
	go func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-t.C:
				el := time.Since(start)
				fmt.Fprintf(progress, "preload: %d objects in %.0f s (%.0f/s)\n", done.Load(), el.Seconds(), float64(done.Load())/el.Seconds())
			}
		}
	}()
	wg.Wait()
	close(stopProgress)
	err = errors.Join(first, ctx.Err(), out.Flush(), f.Close(), d.Close())
	return readN(dir, n, time.Since(start), err)
}

// readN is preload's answer: the first n uids in dir and the fetched ones
// among them.
func readN(dir string, n int, took time.Duration, err error) ([]string, []string, time.Duration, error) {
	if err != nil {
		return nil, nil, 0, err
	}
	f, err := os.Open(filepath.Join(dir, scaleUIDFile))
	if err != nil {
		return nil, nil, 0, err
	}
	defer f.Close()
	var uids, got []string
	sc := bufio.NewScanner(f)
	for sc.Scan() && len(uids) < n {
		uid, is, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if uid == "" {
			continue
		}
		uids = append(uids, uid)
		if i, err := strconv.Atoi(is); err != nil || fetched(i) {
			got = append(got, uid) // no index: a fill that fetched every object
		}
	}
	return uids, got, took, sc.Err()
}
