package backend

import "runtime"

// libtorch keeps per-thread state: grad mode and the wrapper's last error
// are thread-local. A goroutine that moves between OS threads can switch
// grad mode off on one thread and run the op on another, or lose an error.
// Code that drives torch therefore runs on a locked OS thread: `exp` locks
// its main goroutine, train.Run locks its own, and tests lock theirs.

// LockThread pins the calling goroutine to its OS thread; call the returned
// function (usually deferred) to release it.
func LockThread() (unlock func()) {
	runtime.LockOSThread()
	return runtime.UnlockOSThread
}

// NoGrad runs fn with gradient tracking off on this (locked) thread and
// restores the previous mode afterwards, even if fn panics.
func NoGrad(fn func()) {
	defer LockThread()()
	prev, err := setGradEnabled(false)
	if err != nil {
		panic(err) // the wrapper lacks a core symbol: a broken build, not user input
	}
	defer setGradEnabled(prev)
	fn()
}
