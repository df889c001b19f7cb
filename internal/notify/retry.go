package notify

import (
	"context"
	"errors"
	"fmt"
)

// ErrNotFailed is returned by Retry for a callback that has not failed (pending or
// delivered): only a callback that gave up can be tried again.
var ErrNotFailed = errors.New("the callback has not failed")

// Retry queues a failed callback for one more try now (an operator fixed the receiver).
// Its history is kept; if the try fails, it is failed again. ErrNotFound if unknown.
func (n *Notifier) Retry(ctx context.Context, id string) error {
	res, err := n.db.ExecContext(ctx, `UPDATE callbacks SET status=?, next_try_at=?, updated_at=? WHERE id=? AND status=?`,
		StatusPending, ms(n.now()), ms(n.now()), id, StatusFailed)
	if err != nil {
		return err
	}
	if k, _ := res.RowsAffected(); k == 0 {
		if _, err := n.GetCallback(ctx, id); err != nil {
			return err
		}
		return fmt.Errorf("callback %s: %w", id, ErrNotFailed)
	}
	n.setPending(n.pending.Add(1))
	n.poke()
	return nil
}
