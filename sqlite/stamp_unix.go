//go:build unix

package sqlite

import (
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// walIndexVersion is the WAL index format (WalIndexHdr.iVersion) whose
// header commitStamps reads: SQLite's since 3.7.0. Any other, and the
// stamp is not offered.
const walIndexVersion = 3007000

// commitStamps reads the header of the WAL index (the -shm file), which
// every connection in every process maps and which each commit rewrites
// (https://www.sqlite.org/walformat.html, "The WAL-Index Header"): iChange
// counts transactions, and aCksum is a checksum of the header, mxFrame and
// the salts included, so a header reset by a recovery does not repeat an
// earlier stamp. The header is written twice, the second copy first; two
// copies that differ are a commit under way, and then there is no stamp.
type commitStamps struct {
	// f stays open until the database's connections are closed: closing
	// any descriptor of a file drops every POSIX lock the process holds on
	// it, SQLite's included, and another process opening the database
	// would then take itself for the first and reset the WAL index under
	// this one's connections (disk I/O errors, lost savepoints).
	f   *os.File
	mem []byte // the first page of the -shm file, mapped read-only; nil: no stamps
}

// openCommitStamps maps the WAL index of the database at path. The caller
// has a connection open, so the file exists and is initialised. Whatever
// it returns, also with an error, is to be closed after the database's
// connections (see commitStamps.f).
func openCommitStamps(path string) (*commitStamps, error) {
	f, err := os.Open(path + "-shm")
	if err != nil {
		return nil, err
	}
	s := &commitStamps{f: f}
	mem, err := syscall.Mmap(int(f.Fd()), 0, os.Getpagesize(), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return s, fmt.Errorf("map %s-shm: %w", path, err)
	}
	s.mem = mem
	if v := s.word(0); v != walIndexVersion {
		syscall.Munmap(s.mem)
		s.mem = nil
		return s, fmt.Errorf("%s-shm: WAL index version %d, want %d", path, v, walIndexVersion)
	}
	return s, nil
}

// word loads the 32-bit word at byte offset off of the mapping (host byte
// order, as SQLite writes the index).
func (s *commitStamps) word(off int) uint32 {
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(&s.mem[off])))
}

// stamp implements fleetcert.CommitStamper for DB.
func (s *commitStamps) stamp() (uint64, bool) {
	if s.mem == nil {
		return 0, false
	}
	const hdrSize = 48 // sizeof(WalIndexHdr); copies at 0 and 48
	var a, b [hdrSize / 4]uint32
	for i := range a {
		a[i] = s.word(4 * i)
	}
	for i := range b {
		b[i] = s.word(hdrSize + 4*i)
	}
	isInit := (*[4]byte)(unsafe.Pointer(&a[3]))[0] // the byte at offset 12
	if a != b || a[0] != walIndexVersion || isInit == 0 {
		return 0, false
	}
	const iChange, aCksum1 = 2, 11
	return uint64(a[iChange])<<32 | uint64(a[aCksum1]), true
}

// frames returns the number of frames in the WAL (the header's mxFrame),
// when the header is not being rewritten.
func (s *commitStamps) frames() (uint32, bool) {
	if s.mem == nil {
		return 0, false
	}
	const mxFrame, copy2 = 16, 48 + 16
	n := s.word(mxFrame)
	return n, s.word(copy2) == n
}

// oneCommitBetween reports whether exactly one transaction committed
// between stamps before and after: the stamp's high half is the header's
// iChange, which each commit raises by one (and a WAL reset keeps).
func oneCommitBetween(before, after uint64) bool {
	return uint32(after>>32) == uint32(before>>32)+1
}

func (s *commitStamps) close() {
	if s == nil {
		return
	}
	if s.mem != nil {
		syscall.Munmap(s.mem)
		s.mem = nil
	}
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
}
