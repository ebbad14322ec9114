// mooring-leash runs a command that dies with the mooring agent, even when only the
// agent's PID gets SIGKILL (no process-group kill, no graceful shutdown):
//
//	mooring-leash PARENT_PID COMMAND [ARG...]
//
// It asks Linux to send SIGKILL to this process when its parent dies (prctl
// PR_SET_PDEATHSIG), checks that its parent is still PARENT_PID (the agent could have died
// between fork and prctl), then replaces itself with COMMAND (execve keeps the setting, and
// the PID, so the agent's own timeouts and signals reach COMMAND directly). Node.js cannot
// set the parent-death signal without a native addon; this is the few lines it takes.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: mooring-leash PARENT_PID COMMAND [ARG...]")
		os.Exit(2)
	}
	parent, err := strconv.Atoi(os.Args[1])
	if err != nil || parent <= 1 {
		fmt.Fprintf(os.Stderr, "mooring-leash: invalid parent PID %q\n", os.Args[1])
		os.Exit(2)
	}
	path, err := exec.LookPath(os.Args[2])
	if err != nil {
		fmt.Fprintf(os.Stderr, "mooring-leash: %v\n", err)
		os.Exit(127)
	}
	// The parent-death signal belongs to the calling thread, and execve keeps only the
	// calling thread: set it and exec from the same one.
	runtime.LockOSThread()
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0); errno != 0 {
		fmt.Fprintf(os.Stderr, "mooring-leash: prctl(PR_SET_PDEATHSIG): %v\n", errno)
		os.Exit(126)
	}
	if os.Getppid() != parent {
		// The agent is already gone: run nothing.
		os.Exit(137)
	}
	err = syscall.Exec(path, os.Args[2:], os.Environ())
	fmt.Fprintf(os.Stderr, "mooring-leash: exec %s: %v\n", path, err)
	os.Exit(126)
}
