package sessionbudget

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kmipd/kmipd/storage"
)

const table = storage.BudgetTable

// lockClass is the first key of the advisory lock that serialises changes
// to one budget ('kbud'); the second is hashtext(budget name). The
// two-key form is its own key space, apart from storage's one-key
// migration lock.
const lockClass = int32(0x6b627564)

// member is one live lease as a renewal sees it.
type member struct {
	replica, instance string
	sessions          int // the share it holds
	want              int // its demand, within [1, its max_sessions]
	clusterMax        int // the budget it was configured with
	me                bool
}

type reclaimedLease struct {
	replica  string
	sessions int
}

// grant is the outcome of one renewal.
type grant struct {
	found     bool // our lease was alive before this renewal
	share     int  // sessions our lease holds now
	target    int  // the rebalancer's share for us
	size      int  // the budget in force
	live      int  // live leases, ours included
	reclaimed []reclaimedLease
}

// renew is one renewal transaction. Under the budget's advisory lock it
// drops the leases that are Margin past their expiry (database clock),
// computes every live replica's target from their demands, and writes our
// lease: held (what we may have open; never less, it is what the HSM may
// count for us) raised toward our target only into room no other live
// lease holds. So the sum of live shares never exceeds the budget, and no
// share is counted free while its holder may still use it.
func (c *Client) renew(ctx context.Context, held, want, maxSessions int) (grant, error) {
	var g grant
	tx, err := c.db.Begin(ctx)
	if err != nil {
		return g, err
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = tx.Rollback(rctx)
		cancel()
	}()
	name := c.opts.Name
	// One round trip for the lock and the reads: the lock is held from
	// here to COMMIT, and every round trip lengthens that.
	b := &pgx.Batch{}
	b.Queue("SELECT pg_advisory_xact_lock($1, hashtext($2))", lockClass, name)
	b.Queue("DELETE FROM "+table+" WHERE budget = $1 AND expires_at + $2 * interval '1 microsecond' < clock_timestamp() "+
		"RETURNING replica, sessions", name, c.opts.Margin.Microseconds())
	b.Queue("SELECT replica, instance, sessions, demand, cluster_max FROM "+table+
		" WHERE budget = $1 ORDER BY joined_at, replica", name)
	br := tx.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		br.Close()
		return g, err
	}
	rows, _ := br.Query()
	var r reclaimedLease
	if _, err := pgx.ForEachRow(rows, []any{&r.replica, &r.sessions}, func() error {
		g.reclaimed = append(g.reclaimed, r)
		return nil
	}); err != nil {
		br.Close()
		return g, err
	}
	var members []member
	var m member
	rows, _ = br.Query()
	if _, err := pgx.ForEachRow(rows, []any{&m.replica, &m.instance, &m.sessions, &m.want, &m.clusterMax}, func() error {
		members = append(members, m)
		return nil
	}); err != nil {
		br.Close()
		return g, err
	}
	if err := br.Close(); err != nil {
		return g, err
	}

	me := -1
	for i := range members {
		if members[i].replica == c.opts.Replica {
			if members[i].instance != c.instance {
				return g, fmt.Errorf("%w: %q holds a live lease on budget %q", ErrReplicaInUse, c.opts.Replica, name)
			}
			me, g.found = i, true
		}
	}
	if me < 0 { // joining: the newest lease
		members = append(members, member{replica: c.opts.Replica})
		me = len(members) - 1
	}
	members[me].me, members[me].want, members[me].clusterMax = true, want, c.opts.Sessions
	members[me].sessions = 0 // not counted among the others below
	g.size, g.live = c.opts.Sessions, len(members)
	wants := make([]int, len(members))
	others := 0
	for i, m := range members {
		g.size = min(g.size, m.clusterMax)
		wants[i] = max(m.want, 1)
		others += m.sessions
	}
	g.target = allocate(g.size, wants)[me]
	g.share = held
	if g.target > held {
		g.share = max(held, min(g.target, g.size-others))
	}

	_, err = tx.Exec(ctx, "INSERT INTO "+table+" (budget, replica, instance, sessions, demand, max_sessions, cluster_max, "+
		"joined_at, renewed_at, expires_at, renewals) "+
		"VALUES ($1, $2, $3, $4, $5, $6, $7, clock_timestamp(), clock_timestamp(), "+
		"clock_timestamp() + $8 * interval '1 microsecond', 1) "+
		"ON CONFLICT (budget, replica) DO UPDATE SET instance = EXCLUDED.instance, sessions = EXCLUDED.sessions, "+
		"demand = EXCLUDED.demand, max_sessions = EXCLUDED.max_sessions, cluster_max = EXCLUDED.cluster_max, "+
		"renewed_at = EXCLUDED.renewed_at, expires_at = EXCLUDED.expires_at, renewals = "+table+".renewals + 1",
		name, c.opts.Replica, c.instance, g.share, want, maxSessions, c.opts.Sessions, c.opts.Lease.Microseconds())
	if err != nil {
		return g, err
	}
	return g, tx.Commit(ctx)
}

// allocate splits size sessions among replicas in join order, wants[i]
// being replica i's demand (at least 1, at most its own cap): one each
// first, oldest first (every replica keeps its login session; when the
// budget is smaller than the replica count the newest get nothing), then
// one at a time to the replica with the fewest among those wanting more
// (max-min fairness). What nobody wants stays unallocated, so that a
// replica whose demand grows takes it at its next renewal without waiting
// for the others to shrink.
func allocate(size int, wants []int) []int {
	alloc := make([]int, len(wants))
	left := size
	for i := range alloc {
		if left == 0 {
			return alloc
		}
		alloc[i] = 1
		left--
	}
	for ; left > 0; left-- {
		best := -1
		for i, w := range wants {
			if alloc[i] < w && (best < 0 || alloc[i] < alloc[best]) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		alloc[best]++
	}
	return alloc
}

// release deletes our lease: called once our pool holds no session.
func (c *Client) release(ctx context.Context) error {
	_, err := c.db.Exec(ctx, "DELETE FROM "+table+" WHERE budget = $1 AND replica = $2 AND instance = $3",
		c.opts.Name, c.opts.Replica, c.instance)
	return err
}

// checkTable is Open's check with NoMigrate.
func (c *Client) checkTable(ctx context.Context) error {
	var ok bool
	if err := c.db.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&ok); err != nil {
		return fmt.Errorf("sessionbudget: check schema: %w", err)
	}
	if !ok {
		return fmt.Errorf("sessionbudget: %w: table %s missing; migrate the database first (kmipd storage migrate)",
			storage.ErrSchemaVersion, table)
	}
	return nil
}
