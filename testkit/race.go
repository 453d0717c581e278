//go:build race

package testkit

// raceEnabled: this binary was built with -race, so kmipd is built with it too.
const raceEnabled = true
