//go:build unix

package pgserver

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"syscall"
)

// runAs is the non-root user a root test process runs the server as.
type runAs struct {
	uid, gid uint32
	home     string
}

// apply makes cmd run as r; a nil r leaves cmd as the current user.
func (r *runAs) apply(cmd *exec.Cmd) {
	if r == nil {
		return
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: r.uid, Gid: r.gid}}
	cmd.Env = append(cmd.Env, "HOME="+r.home, "USER=postgres", "LOGNAME=postgres")
}

// own hands paths to r, so the server can use them.
func (r *runAs) own(paths ...string) error {
	if r == nil {
		return nil
	}
	for _, p := range paths {
		if err := os.Chown(p, int(r.uid), int(r.gid)); err != nil {
			return err
		}
	}
	return nil
}

// serverUser is the user the server runs as: the postgres user when we are
// root (initdb refuses root), else ourselves (nil).
func serverUser() (*runAs, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, errors.New("running as root and there is no postgres user to run the server as (initdb refuses root); install the postgresql package, which creates it")
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("postgres user has ids %q/%q", u.Uid, u.Gid)
	}
	return &runAs{uid: uint32(uid), gid: uint32(gid), home: u.HomeDir}, nil
}
