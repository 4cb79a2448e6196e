//go:build unix

package app

import (
	"log/slog"
	"syscall"
)

// wantFiles is the file descriptor limit below which a warning is logged:
// every client connection takes one.
const wantFiles = 65536

// raiseFileLimit raises the soft RLIMIT_NOFILE to the hard limit.
func raiseFileLimit(log *slog.Logger) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		log.Warn("cannot read the file descriptor limit", "err", err)
		return
	}
	if rl.Cur < rl.Max {
		raised := rl
		raised.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
			log.Warn("cannot raise the file descriptor limit", "soft", rl.Cur, "hard", rl.Max, "err", err)
		} else {
			rl = raised
		}
	}
	if rl.Cur < wantFiles {
		log.Warn("the file descriptor limit is low: each client connection uses one; raise it (systemd: LimitNOFILE=1048576; shell: ulimit -Hn)",
			"limit", rl.Cur, "recommended", wantFiles)
	}
}
