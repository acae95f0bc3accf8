// Package faults holds fault-injection tests of the fhir-binary-gateway
// binary: Redis hung or killed under load, S3 killed mid-download, the
// gateway killed during uploads, a slow client, and presigned URLs near a
// file's expiry. Each test stops and kills servers, so it never uses the
// shared servers of `make test`: it starts its own redis-server and S3
// server (versitygw, as make test) on free loopback ports with temporary
// data directories, and runs the gateway as a separate process built once
// per test run.
//
// The package has no code of its own; everything is in its _test.go files.
package faults
