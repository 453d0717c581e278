package main

import (
	"context"
	"fmt"
	"io"

	"github.com/kmipd/kmipd/daemon"
	"github.com/kmipd/kmipd/storage"
)

const storageUsage = "Usage:\n  kmipd storage migrate -config FILE\n"

// cmdStorage runs `kmipd storage migrate`: it brings the PostgreSQL schema up
// to the one this binary knows, as every replica does when it starts, for
// deployments that migrate in a separate step with a more privileged role.
func cmdStorage(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "migrate" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
			fmt.Fprint(stdout, storageUsage)
			return nil
		}
		fmt.Fprint(stderr, storageUsage)
		return errUsage
	}
	c, err := loadConfigFlag("storage migrate", "storage migrate -config FILE", args[1:], stderr)
	if err != nil {
		return err
	}
	if c.Storage.Backend != daemon.BackendPostgres {
		return fmt.Errorf("storage migrate: the storage backend is %s; only postgres has a schema to migrate", c.Storage.Backend)
	}
	url, err := c.PostgresURL()
	if err != nil {
		return err
	}
	from, to, err := storage.MigratePostgres(ctx, url)
	if err != nil {
		return err
	}
	if from == to {
		fmt.Fprintf(stdout, "schema version %d: up to date\n", to)
		return nil
	}
	fmt.Fprintf(stdout, "schema migrated from version %d to %d\n", from, to)
	return nil
}
