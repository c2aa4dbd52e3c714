//go:build !unix

package sqlite

import "errors"

// commitStamps is not offered on this platform: readers read the feed.
type commitStamps struct{}

func openCommitStamps(path string) (*commitStamps, error) {
	return nil, errors.New("no WAL index mapping on this platform")
}

func (s *commitStamps) stamp() (uint64, bool) { return 0, false }

func (s *commitStamps) frames() (uint32, bool) { return 0, false }

func oneCommitBetween(before, after uint64) bool { return false }

func (s *commitStamps) close() {}
