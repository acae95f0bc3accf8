//go:build race

package gateway

// raceEnabled: the race detector multiplies a process's memory, so RSS
// bounds are measured (and asserted) only without it.
const raceEnabled = true
