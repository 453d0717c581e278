package daemon

import "context"

// RotateMasterForTest runs a master-key rotation with a context the test
// controls (the admin socket's handlers run under the server's), so a test
// can interrupt one part-way.
func (d *Daemon) RotateMasterForTest(ctx context.Context, kind string, args RotateMasterArgs, progress func(done, total int)) (*RotateMasterResult, error) {
	return d.rotateMaster(ctx, kind, args, progress)
}
