package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"

	"github.com/kmipd/kmipd/admin"
	"github.com/kmipd/kmipd/hsm"
	"github.com/kmipd/kmipd/kek"
	"github.com/kmipd/kmipd/storage"
)

// rotationKey holds the master-key rotation under way, so a restarted
// kmipd knows which keys unlabelled pKEK record entries mean (From) and a
// second rotate-mkek or rotate-hmac resumes it.
const rotationKey = "meta/rotation"

// MasterRotation is the record at rotationKey.
type MasterRotation struct {
	Kind       string     `json:"kind"` // "mkek" or "hmac"
	From       kek.Labels `json:"from"`
	To         kek.Labels `json:"to"`
	DestroyOld bool       `json:"destroy_old,omitempty"`
}

// RotateMasterArgs are rotate-mkek's and rotate-hmac's arguments.
type RotateMasterArgs struct {
	Label      string `json:"label,omitempty"` // the new key's label; default <configured>/gen-N
	DestroyOld bool   `json:"destroy_old,omitempty"`
}

// RotateMasterResult is their answer.
type RotateMasterResult struct {
	Kind     string `json:"kind"`
	From     string `json:"from"`
	To       string `json:"to"`
	Entries  int    `json:"entries"` // pKEK record entries rewrapped or re-MACed
	Resumed  bool   `json:"resumed,omitempty"`
	Retired  string `json:"retired"` // "disabled" or "destroyed"
	Reminder string `json:"reminder"`
}

// loadRotation applies an unfinished master-key rotation to the keyring at
// start: unlabelled entries mean its source keys, new ones use its target.
func (d *Daemon) loadRotation(ctx context.Context) error {
	r, err := readRotation(ctx, d.store)
	if err != nil || r == nil {
		return err
	}
	d.keyring.SetMasterLabels(r.From, r.To)
	if err := d.useMasterKeys(ctx, r.To); err != nil && !errors.Is(err, hsm.ErrNoKey) {
		return err // ErrNoKey: the crash came before the key was made; the resume makes it
	}
	d.log.Warn("a master-key rotation is unfinished; run `kmipd admin rotate-"+r.Kind+"` to finish it",
		"from", r.From, "to", r.To)
	return nil
}

func readRotation(ctx context.Context, st storage.Store) (*MasterRotation, error) {
	b, err := st.Get(ctx, rotationKey)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", rotationKey, err)
	}
	var r MasterRotation
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s is damaged: %w", rotationKey, err)
	}
	return &r, nil
}

var genSuffix = regexp.MustCompile(`/gen-([0-9]+)$`)

// nextLabel is label's successor: kmipd-mkek -> kmipd-mkek/gen-2 -> .../gen-3.
func nextLabel(label string) string {
	if m := genSuffix.FindStringSubmatchIndex(label); m != nil {
		n, _ := strconv.Atoi(label[m[2]:m[3]])
		return label[:m[0]] + "/gen-" + strconv.Itoa(n+1)
	}
	return label + "/gen-2"
}

func (a *adminState) rotateMKEK(ctx context.Context, raw json.RawMessage, r *admin.Responder) (any, error) {
	return a.rotateMaster(ctx, "mkek", raw, r)
}

func (a *adminState) rotateHMAC(ctx context.Context, raw json.RawMessage, r *admin.Responder) (any, error) {
	return a.rotateMaster(ctx, "hmac", raw, r)
}

func (a *adminState) rotateMaster(ctx context.Context, kind string, raw json.RawMessage, r *admin.Responder) (any, error) {
	var args RotateMasterArgs
	if err := admin.DecodeArgs(raw, &args); err != nil {
		return nil, err
	}
	a.mu.Lock()
	if a.rotation != "" {
		running := a.rotation
		a.mu.Unlock()
		return nil, fmt.Errorf("%w: %s", admin.ErrBusy, running)
	}
	a.rotation = "rotate-" + kind
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.rotation = ""
		a.mu.Unlock()
	}()
	return a.d.rotateMaster(ctx, kind, args, func(done, total int) { r.Progress("pKEK records", int64(done), int64(total)) })
}

// rotateMaster creates the new master key, moves every pKEK record entry
// to it and retires the old key once none needs it. Every step is safe to
// repeat, so a crash anywhere is finished by running it again.
func (d *Daemon) rotateMaster(ctx context.Context, kind string, args RotateMasterArgs, progress func(done, total int)) (*RotateMasterResult, error) {
	hk := hsm.KindMKEK
	if kind == "hmac" {
		hk = hsm.KindHMAC
	}
	pick := func(l kek.Labels) string {
		if kind == "hmac" {
			return l.HMAC
		}
		return l.MKEK
	}
	rot, err := readRotation(ctx, d.store)
	if err != nil {
		return nil, err
	}
	res := &RotateMasterResult{Kind: kind}
	switch {
	case rot != nil && rot.Kind != kind:
		return nil, fmt.Errorf("an unfinished rotate-%s (to %q) must finish first", rot.Kind, pick(rot.To))
	case rot != nil && args.Label != "" && args.Label != pick(rot.To):
		return nil, fmt.Errorf("an unfinished rotate-%s to %q is under way; run it again without -label (or with -label %s) to finish it", kind, pick(rot.To), pick(rot.To))
	case rot != nil:
		res.Resumed = true
		rot.DestroyOld = rot.DestroyOld || args.DestroyOld
	default:
		_, cur := d.keyring.MasterLabels()
		to := cur
		label := args.Label
		if label == "" {
			label = nextLabel(pick(cur))
		}
		if label == pick(cur) {
			return nil, fmt.Errorf("%q is the current %s already", label, kind)
		}
		if have, err := d.hsm.HasMasterKey(ctx, hk, label); err != nil {
			return nil, err
		} else if have {
			return nil, fmt.Errorf("a key labelled %q is already on the token; choose another -label", label)
		}
		if kind == "hmac" {
			to.HMAC = label
		} else {
			to.MKEK = label
		}
		rot = &MasterRotation{Kind: kind, From: cur, To: to, DestroyOld: args.DestroyOld}
		b, _ := json.Marshal(rot)
		// Recorded before the key exists: a crash in between leaves a
		// rotation the next run finishes (creating the key is idempotent).
		if err := d.store.Create(ctx, rotationKey, b); err != nil {
			return nil, fmt.Errorf("recording the rotation: %w", err)
		}
		if _, err := d.hsm.CreateMasterKey(ctx, hk, label); err != nil {
			_ = d.store.Delete(context.WithoutCancel(ctx), rotationKey)
			return nil, fmt.Errorf("creating %s %q: %w", kind, label, err)
		}
	}
	res.From, res.To = pick(rot.From), pick(rot.To)
	if _, err := d.hsm.CreateMasterKey(ctx, hk, res.To); err != nil { // resumed: it may never have been made
		return nil, fmt.Errorf("creating %s %q: %w", kind, res.To, err)
	}
	d.keyring.SetMasterLabels(rot.From, rot.To)
	if err := d.hsm.SetCurrentMasterKey(ctx, hk, res.To); err != nil {
		return nil, err
	}
	log := d.log.Named("admin")
	log.Info("master-key rotation: rewrapping pKEK records", "kind", kind, "from", res.From, "to", res.To, "resumed", res.Resumed)
	if res.Entries, err = d.keyring.RewrapAll(ctx, progress); err != nil {
		return res, fmt.Errorf("rewrapping pKEK records (run the command again to resume): %w", err)
	}
	if left, err := d.keyring.NeedsMaster(ctx); err != nil {
		return res, err
	} else if left > 0 {
		return res, fmt.Errorf("%d pKEK record entries still need %q; run the command again", left, res.From)
	}
	// No record needs the old key, and the HSM's own use (Check, a device
	// recovery's lookup) follows the new one: retire it now.
	if err := d.hsm.RetireMasterKey(ctx, hk, res.From, rot.DestroyOld); err != nil {
		return res, fmt.Errorf("retiring %q: %w", res.From, err)
	}
	res.Retired = map[bool]string{true: "destroyed", false: "disabled"}[rot.DestroyOld]
	// The store names the current keys before the rotation record goes: a
	// restart on a kmipd.hcl that still names the retired key uses them.
	if err := recordMaster(ctx, d.store, rot); err != nil {
		return res, fmt.Errorf("recording the new master keys in %s: %w", masterKey, err)
	}
	if err := d.store.Delete(ctx, rotationKey); err != nil {
		return res, fmt.Errorf("clearing %s: %w", rotationKey, err)
	}
	res.Reminder = fmt.Sprintf("set %s_label = %q in the hsm block (kmipd uses the store's current keys at start, and warns while the configuration names others)", kind, res.To)
	log.Info("master key rotated", "kind", kind, "to", res.To, "entries", res.Entries)
	return res, nil
}

// useMasterKeys makes the HSM's current master keys those of l (a
// rotation's target, resumed at start).
func (d *Daemon) useMasterKeys(ctx context.Context, l kek.Labels) error {
	if err := d.hsm.SetCurrentMasterKey(ctx, hsm.KindMKEK, l.MKEK); err != nil {
		return err
	}
	return d.hsm.SetCurrentMasterKey(ctx, hsm.KindHMAC, l.HMAC)
}
