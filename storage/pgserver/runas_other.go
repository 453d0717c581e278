//go:build !unix

package pgserver

import "os/exec"

// runAs is never needed off Unix, where the tests run as an ordinary user.
type runAs struct{ home string }

func (r *runAs) apply(*exec.Cmd)     {}
func (r *runAs) own(...string) error { return nil }

// serverUser: the current user.
func serverUser() (*runAs, error) { return nil, nil }
