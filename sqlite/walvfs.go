package sqlite

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// The write connection opens the database through walVFSName, SQLite's own
// unix VFS with one difference: the WAL file's writes are gathered and
// handed to the kernel in two pwrite calls per commit instead of two per
// frame.
//
// Why: SQLite writes a WAL frame as two writes, its 24-byte header and then
// its page, each a pwrite system call. A commit of ~10 registrations wrote
// ~48 frames, ~96 system calls at 2–4 µs each here: 15 % of the server's
// CPU under 16 clients registering, in the writer's serial turn
// (BENCHMARKS.md, "The WAL's frames written in two system calls per
// commit"). One pwrite of the same bytes costs about a fourteenth of that.
//
// What it changes, and why durability does not: the bytes written and
// their offsets are SQLite's, in SQLite's order; only when they reach the
// kernel moves. Writes that follow one another in the file are held. A
// commit frame's header (https://www.sqlite.org/fileformat2.html#walformat:
// a frame header whose "database size after commit" is not zero) goes to
// the kernel at once with what is held, and the commit frame's page, the
// next write, goes at once too. SQLite writes both before it publishes the
// commit in the WAL index, so no reader and no checkpoint can look for a
// frame that is still held, and a commit acknowledged to a caller is in the
// kernel as before (synchronous=NORMAL: a crash of the process loses
// nothing acknowledged). A crash while frames are held loses a transaction
// that had not committed, which SQLite would roll back anyway. Anything
// else on the file first sends what is held: a write elsewhere than right
// after the held bytes (SQLite rewriting a frame of its own transaction, or
// starting the WAL over), a read, a sync, a truncate, asking its size, a
// file control, closing it. A failed write is reported for the write that
// sent it: that fails the transaction, as a failed pwrite of SQLite's own
// would.
const walVFSName = "fleetcert-wal"

// walBufferSize bounds what one WAL file holds: a larger transaction (a bulk
// job's batch) is written in pieces of this size.
const walBufferSize = 1 << 20

// maxUnixWrite bounds one write handed to the unix VFS: its seekAndWriteFd
// keeps only the low 17 bits of the length (a write of 128 KiB or more
// would be cut short and reported as SQLITE_FULL).
const maxUnixWrite = 31 * 4096

// walFrameHeaderSize is the size of a WAL frame's header, which SQLite
// writes alone, before the frame's page.
const walFrameHeaderSize = 24

// walVFS is the VFS and the WAL files' methods. SQLite's structures live in
// memory from libc's allocator, which SQLite's code (Go from C) addresses by
// arithmetic; the garbage collector neither moves nor frees it.
var walVFS struct {
	once sync.Once
	err  error
	base *sqlite3.Tsqlite3_vfs        // SQLite's default, which does the work
	io   *sqlite3.Tsqlite3_io_methods // the WAL files' methods
	real uintptr                      // the io methods of the first WAL file base opened

	mu    sync.Mutex
	files map[uintptr]*walFile // by their sqlite3_file
}

// walFile is a WAL file opened through walVFSName: the bytes it holds (in
// memory from libc's allocator, handed to the real write as they are).
type walFile struct {
	mu     sync.Mutex
	buf    uintptr // walBufferSize bytes, allocated at the first write
	n      int     // bytes held in buf
	off    int64   // the file offset of buf's first byte
	commit bool    // the last write was a commit frame's header
}

// registerWALVFS registers walVFSName once in the process.
func registerWALVFS() error {
	walVFS.once.Do(func() {
		tls := libc.NewTLS()
		defer tls.Close()
		base := sqlite3.Xsqlite3_vfs_find(tls, 0)
		if base == 0 {
			walVFS.err = errors.New("register SQLite VFS " + walVFSName + ": no default VFS")
			return
		}
		walVFS.base = (*sqlite3.Tsqlite3_vfs)(cPointer(base))
		vfs := libc.Xcalloc(tls, 1, libc.Tsize_t(unsafe.Sizeof(sqlite3.Tsqlite3_vfs{})))
		io := libc.Xcalloc(tls, 1, libc.Tsize_t(unsafe.Sizeof(sqlite3.Tsqlite3_io_methods{})))
		name, err := libc.CString(walVFSName)
		if vfs == 0 || io == 0 || err != nil {
			walVFS.err = errors.New("register SQLite VFS " + walVFSName + ": out of memory")
			return
		}
		v := (*sqlite3.Tsqlite3_vfs)(cPointer(vfs)) // registered as walVFSName
		walVFS.io = (*sqlite3.Tsqlite3_io_methods)(cPointer(io))
		*v = *walVFS.base
		v.FpNext = 0
		v.FzName = name
		*(*func(*libc.TLS, uintptr, uintptr, uintptr, int32, uintptr) int32)(unsafe.Pointer(&v.FxOpen)) = walOpen
		walVFS.files = make(map[uintptr]*walFile)
		if rc := sqlite3.Xsqlite3_vfs_register(tls, vfs, 0); rc != sqlite3.SQLITE_OK {
			walVFS.err = fmt.Errorf("register SQLite VFS %s: SQLite error %d", walVFSName, rc)
		}
	})
	return walVFS.err
}

// walOpen is the VFS's xOpen: base opens the file; a WAL file gets
// walVFS.io, which holds its writes.
func walOpen(tls *libc.TLS, pVfs, zName, pFile uintptr, flags int32, pOutFlags uintptr) int32 {
	open := *(*func(*libc.TLS, uintptr, uintptr, uintptr, int32, uintptr) int32)(unsafe.Pointer(&walVFS.base.FxOpen))
	rc := open(tls, uintptr(unsafe.Pointer(walVFS.base)), zName, pFile, flags, pOutFlags)
	if rc != sqlite3.SQLITE_OK || flags&sqlite3.SQLITE_OPEN_WAL == 0 {
		return rc
	}
	file := (*sqlite3.Tsqlite3_file)(cPointer(pFile))
	walVFS.mu.Lock()
	defer walVFS.mu.Unlock()
	if walVFS.real == 0 && file.FpMethods != 0 {
		walVFS.real = file.FpMethods
		*walVFS.io = *(*sqlite3.Tsqlite3_io_methods)(cPointer(walVFS.real))
		*(*func(*libc.TLS, uintptr) int32)(unsafe.Pointer(&walVFS.io.FxClose)) = walClose
		*(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&walVFS.io.FxRead)) = walRead
		*(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&walVFS.io.FxWrite)) = walWrite
		*(*func(*libc.TLS, uintptr, int64) int32)(unsafe.Pointer(&walVFS.io.FxTruncate)) = walTruncate
		*(*func(*libc.TLS, uintptr, int32) int32)(unsafe.Pointer(&walVFS.io.FxSync)) = walSync
		*(*func(*libc.TLS, uintptr, uintptr) int32)(unsafe.Pointer(&walVFS.io.FxFileSize)) = walFileSize
		*(*func(*libc.TLS, uintptr, int32, uintptr) int32)(unsafe.Pointer(&walVFS.io.FxFileControl)) = walFileControl
	}
	if file.FpMethods != walVFS.real {
		return rc // opened by other methods than the first: left as base made it
	}
	walVFS.files[pFile] = &walFile{}
	file.FpMethods = uintptr(unsafe.Pointer(walVFS.io))
	return rc
}

// cPointer is p, an address in memory from libc's allocator or in SQLite's
// own variables (which the garbage collector neither moves nor frees), as
// a pointer.
func cPointer(p uintptr) unsafe.Pointer {
	return *(*unsafe.Pointer)(unsafe.Pointer(&p))
}

func realIO() *sqlite3.Tsqlite3_io_methods {
	return (*sqlite3.Tsqlite3_io_methods)(cPointer(walVFS.real))
}

// fileOf returns pFile's walFile, locked; unlock it with f.mu.Unlock.
func fileOf(pFile uintptr) *walFile {
	walVFS.mu.Lock()
	f := walVFS.files[pFile]
	walVFS.mu.Unlock()
	f.mu.Lock()
	return f
}

// flush hands what f holds to the real write. f.mu is held.
func (f *walFile) flush(tls *libc.TLS, pFile uintptr) int32 {
	if f.n == 0 {
		return sqlite3.SQLITE_OK
	}
	n := f.n
	f.n = 0
	return writeThrough(tls, pFile, f.buf, n, f.off)
}

// writeThrough writes n bytes at p to pFile at off with the real write, in
// pieces of at most maxUnixWrite.
func writeThrough(tls *libc.TLS, pFile, p uintptr, n int, off int64) int32 {
	write := *(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&realIO().FxWrite))
	for done := 0; done < n; {
		k := min(n-done, maxUnixWrite)
		if rc := write(tls, pFile, p+uintptr(done), int32(k), off+int64(done)); rc != sqlite3.SQLITE_OK {
			return rc
		}
		done += k
	}
	return sqlite3.SQLITE_OK
}

func walWrite(tls *libc.TLS, pFile, zBuf uintptr, iAmt int32, iOfst int64) int32 {
	f := fileOf(pFile)
	defer f.mu.Unlock()
	if f.n > 0 && (iOfst != f.off+int64(f.n) || f.n+int(iAmt) > walBufferSize) {
		if rc := f.flush(tls, pFile); rc != sqlite3.SQLITE_OK {
			f.commit = false
			return rc
		}
	}
	if int(iAmt) > walBufferSize { // never from SQLite, whose pages are at most 64 KiB
		f.commit = false
		return writeThrough(tls, pFile, zBuf, int(iAmt), iOfst)
	}
	if f.buf == 0 {
		if f.buf = libc.Xmalloc(tls, walBufferSize); f.buf == 0 {
			return sqlite3.SQLITE_NOMEM
		}
	}
	if f.n == 0 {
		f.off = iOfst
	}
	src := unsafe.Slice((*byte)(cPointer(zBuf)), iAmt)
	copy(unsafe.Slice((*byte)(cPointer(f.buf+uintptr(f.n))), iAmt), src)
	f.n += int(iAmt)
	switch {
	case f.commit:
		// The page of the commit frame: it goes to the kernel before
		// SQLite publishes the commit.
		f.commit = false
		return f.flush(tls, pFile)
	case iAmt == walFrameHeaderSize && binary.BigEndian.Uint32(src[4:8]) != 0:
		// A commit frame's header goes to the kernel at once, with what
		// is held: no write may follow it before SQLite publishes the
		// commit, as when it rewrites the header of a transaction's
		// frames in place (walRewriteChecksums, after a transaction
		// that wrote a page twice). Its page, when it follows, goes on
		// its own.
		f.commit = true
		return f.flush(tls, pFile)
	}
	return sqlite3.SQLITE_OK
}

// sent hands what pFile holds to the kernel, for an operation that must
// find the file as SQLite wrote it.
func sent(tls *libc.TLS, pFile uintptr) int32 {
	f := fileOf(pFile)
	defer f.mu.Unlock()
	return f.flush(tls, pFile)
}

func walRead(tls *libc.TLS, pFile, zBuf uintptr, iAmt int32, iOfst int64) int32 {
	if rc := sent(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return (*(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&realIO().FxRead)))(tls, pFile, zBuf, iAmt, iOfst)
}

func walTruncate(tls *libc.TLS, pFile uintptr, size int64) int32 {
	if rc := sent(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return (*(*func(*libc.TLS, uintptr, int64) int32)(unsafe.Pointer(&realIO().FxTruncate)))(tls, pFile, size)
}

func walSync(tls *libc.TLS, pFile uintptr, flags int32) int32 {
	if rc := sent(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return (*(*func(*libc.TLS, uintptr, int32) int32)(unsafe.Pointer(&realIO().FxSync)))(tls, pFile, flags)
}

func walFileSize(tls *libc.TLS, pFile, pSize uintptr) int32 {
	if rc := sent(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return (*(*func(*libc.TLS, uintptr, uintptr) int32)(unsafe.Pointer(&realIO().FxFileSize)))(tls, pFile, pSize)
}

func walFileControl(tls *libc.TLS, pFile uintptr, op int32, pArg uintptr) int32 {
	if rc := sent(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return (*(*func(*libc.TLS, uintptr, int32, uintptr) int32)(unsafe.Pointer(&realIO().FxFileControl)))(tls, pFile, op, pArg)
}

func walClose(tls *libc.TLS, pFile uintptr) int32 {
	f := fileOf(pFile)
	rc := f.flush(tls, pFile)
	if f.buf != 0 {
		libc.Xfree(tls, f.buf)
		f.buf = 0
	}
	f.mu.Unlock()
	walVFS.mu.Lock()
	delete(walVFS.files, pFile)
	walVFS.mu.Unlock()
	closeFile := *(*func(*libc.TLS, uintptr) int32)(unsafe.Pointer(&realIO().FxClose))
	if rc2 := closeFile(tls, pFile); rc == sqlite3.SQLITE_OK {
		rc = rc2
	}
	return rc
}
