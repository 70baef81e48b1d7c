package main

import (
	"errors"
	"io"
)

// output is a command's standard output. Commands print to it without
// checking each write (`_, _ = fmt.Fprintf(out, …)`): it keeps the first
// failed write's error and writes nothing after it, and dispatch fails the
// command with that error, so output lost to a full disk or a closed pipe
// never passes for success.
type output struct {
	w   io.Writer
	err error
}

// Write writes p unless an earlier write failed.
func (o *output) Write(p []byte) (int, error) {
	if o.err != nil {
		return 0, o.err
	}
	n, err := o.w.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	o.err = err
	return n, err
}

// closeInto closes c when a command returns and joins a failure to close
// into the command's error: `defer closeInto(&cmdErr, store)`, where cmdErr
// is the command's named result (a name of its own, so that no `err :=` in
// a nested block shadows it).
func closeInto(err *error, c io.Closer) {
	*err = errors.Join(*err, c.Close())
}
