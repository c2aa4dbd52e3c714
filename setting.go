package fleetcert

import (
	"context"
	"fmt"
)

// LoadOrCreateSetting returns the store's setting name, creating it with
// the value create returns when the store has none. Settings are written
// once: when several processes race to create one, every one of them
// returns the value of the first to commit.
func LoadOrCreateSetting(ctx context.Context, s Store, name string, create func() ([]byte, error)) ([]byte, error) {
	v, err := readSetting(ctx, s, name)
	if ErrorCode(err) != EResourceNotFound {
		return v, err
	}
	if v, err = create(); err != nil {
		return nil, fmt.Errorf("setting %s: %w", name, err)
	}
	err = s.Update(ctx, func(tx Tx) error { return tx.CreateSetting(ctx, name, v) })
	switch ErrorCode(err) {
	case "":
		return v, nil
	case EResourceAlreadyExists: // another process created it first
		return readSetting(ctx, s, name)
	}
	return nil, fmt.Errorf("setting %s: %w", name, err)
}

func readSetting(ctx context.Context, s Store, name string) ([]byte, error) {
	var v []byte
	err := s.View(ctx, func(tx Tx) error {
		var err error
		v, err = tx.Setting(ctx, name)
		return err
	})
	return v, err
}
