package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tokentray/tokentray/internal/alerts"
)

var _ alerts.Claimer = (*Store)(nil)

// ClaimAlert records that this instance tells alert kind of name for
// generation, unless that kind was told for this generation or a later one
// (alerts.Claimer): one row per connection and kind, moved forward by a
// compare-and-set on its generation, so that every instance but the first
// finds it taken. The row holds no token: a name, a kind, a generation and
// an instance name.
func (s *Store) ClaimAlert(ctx context.Context, name, kind string, generation uint64) (won bool, by string, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	err = s.pool.QueryRow(ctx, `INSERT INTO tokentray_alerts (name, kind, generation, told_by) VALUES ($1, $2, $3, $4)
		ON CONFLICT (name, kind) DO UPDATE SET generation = EXCLUDED.generation, told_by = EXCLUDED.told_by, told_at = now()
		WHERE tokentray_alerts.generation < EXCLUDED.generation
		RETURNING told_by`, name, kind, int64(generation), s.instance).Scan(&by)
	if err == nil {
		return true, by, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return false, "", fmt.Errorf("claim the %s alert of %s: %w", kind, name, s.explain("write", err))
	}
	// Taken: read by whom, in a statement of its own (the insert's
	// snapshot may predate the other instance's commit that it waited for).
	err = s.pool.QueryRow(ctx, `SELECT told_by FROM tokentray_alerts WHERE name = $1 AND kind = $2`, name, kind).Scan(&by)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return false, "", fmt.Errorf("read who told the %s alert of %s: %w", kind, name, s.explain("read", err))
	}
	return false, by, nil
}
