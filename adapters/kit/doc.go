// Package kit is what LMS adapters share, so each rule has one definition:
// settings mistakes collected by key (Problems), secrets read from a file
// or the environment with one trimming rule (ReadSecret, TrimSecret),
// paths resolved against cvbridge.yaml's directory (Resolve) and Moodle's
// table prefix (CheckPrefix). The core reads its own secrets (targets,
// webhooks, OAuth clients, `cvbridge sign`) through ReadSecret too.
//
// The kit needs no cgo and imports nothing of the core but the adapter
// contract's types, so an adapter built on it and on bridge/source builds
// with CGO_ENABLED=0. Package kittest holds an in-memory source.Sink for
// adapter tests.
package kit
