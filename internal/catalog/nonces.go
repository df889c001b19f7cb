package catalog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// UseNonce records a signature nonce (key: the access key id and the nonce) until
// expires and reports whether it was new: false means it is still remembered from an
// earlier request, which must then be refused as a replay. The check and the insert are
// one statement, so two concurrent requests with one nonce cannot both pass; the table
// is in the database, so a restart does not forget what was used. Expired nonces are
// deleted on the way. The row holds the key's SHA-256 (hex): the key is the client's
// bytes, which PostgreSQL's TEXT refuses when they hold a NUL or are not UTF-8.
func (c *Catalog) UseNonce(ctx context.Context, key string, now, expires time.Time) (bool, error) {
	if _, err := c.db.ExecContext(ctx, `DELETE FROM signature_nonces WHERE expires_at <= $1`, MS(now)); err != nil {
		return false, err
	}
	// A row left over with an expiry in the past (the clock went back) is taken over.
	res, err := c.db.ExecContext(ctx, `INSERT INTO signature_nonces(key, expires_at) VALUES($1, $2)
		ON CONFLICT(key) DO UPDATE SET expires_at=excluded.expires_at WHERE signature_nonces.expires_at <= $3`,
		nonceRow(key), MS(expires), MS(now))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func nonceRow(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}
