package testmodule

import (
	"bufio"
	"os"
	"os/exec"
	"testing"
)

// StartClient starts this test binary again as another process using the
// module, so a test can share the capped "HSM" with a second application. The
// child sees the test's environment plus env, must print "ready" on a line of
// its own once it holds what it was asked to, and should end when its stdin
// closes. stop closes its stdin and waits for it, reporting a failed exit on
// t; killing cmd.Process instead simulates a crash. name labels failures.
func StartClient(t testing.TB, name string, env ...string) (cmd *exec.Cmd, stop func()) {
	t.Helper()
	cmd = exec.Command(os.Args[0])
	// GORACE: a -race binary otherwise sleeps a second before exiting.
	cmd.Env = append(append(os.Environ(), "GORACE=atexit_sleep_ms=0"), env...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if line != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("%s: %q %v", name, line, err)
	}
	stop = func() {
		in.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	return cmd, stop
}
