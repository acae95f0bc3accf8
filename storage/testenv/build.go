package testenv

// GoBuild is how a test builds the gateway's binary (the CLI and fault tests
// run the real program): with the race detector when the test itself runs
// under it, as make test's go test -race does. The build then reuses every
// package go vet -race and go test -race compiled and only links; built as
// scripts/build.sh builds it (CGO_ENABLED=0, -trimpath) it compiled all of
// them a second time, 137 CPU-seconds of a fresh clone's make test on two
// cores. The real program then runs under the race detector too. Without
// -race the tests build as build.sh does, sharing make run's compile.
//
// Args are go build's flags and Env the variables to add; BuildScriptEnv is
// what scripts/build.sh (make run, make build) takes to build the same way.
func GoBuild() (args, env []string) {
	if raceEnabled {
		return []string{"-race"}, []string{"CGO_ENABLED=1"}
	}
	return []string{"-trimpath"}, []string{"CGO_ENABLED=0"}
}

// BuildScriptEnv is the environment scripts/build.sh needs to build as
// GoBuild does (GO_BUILD_RACE=1 under -race; nothing otherwise).
func BuildScriptEnv() []string {
	if raceEnabled {
		return []string{"GO_BUILD_RACE=1"}
	}
	return nil
}
