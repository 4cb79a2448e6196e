// Package e2e runs the stoa binary as an operator would and drives it with
// XMPP clients that nobody on the stoa team wrote (mellium, go-xmpp,
// slixmpp, aioxmpp, go-sendxmpp) plus raw TLS connections for hostile
// input. Each test starts its own server with `stoa serve -c FILE`.
//
// The Python and command-line clients are Debian packages. When one is
// missing the test is skipped, or fails when STOA_REQUIRE_CLIENTS=1 (as
// `make test` sets it), with the apt-get command that installs it.
package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"stoa.im/stoa/internal/certs"
)

// testEnv is prepared once by TestMain and only read afterwards.
type testEnv struct {
	bin      string // the stoa binary
	ca       string // PEM file of the CA that signed the server certificate
	cert     string
	key      string
	roots    *x509.CertPool
	testdata string // absolute path of testdata/
}

var env testEnv

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "stoa-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := setup(dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	return m.Run()
}

func setup(dir string) error {
	if bin := os.Getenv("STOA_E2E_BIN"); bin != "" {
		// A binary built elsewhere (e.g. the release build under test).
		abs, err := filepath.Abs(bin)
		if err != nil {
			return err
		}
		env.bin = abs
	} else {
		env.bin = filepath.Join(dir, "stoa")
		if runtime.GOOS == "windows" {
			env.bin += ".exe"
		}
		// When the tests run with -race the server is built with it too,
		// so that a data race inside the server makes it exit non-zero
		// (66) and the test that stopped it fail.
		args := []string{"build", "-o", env.bin}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, "stoa.im/stoa/cmd/stoa")
		build := exec.Command("go", args...)
		if out, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("go %v: %v\n%s", args, err, out)
		}
	}
	files, err := certs.GenerateDev(filepath.Join(dir, "tls"), []string{"localhost"})
	if err != nil {
		return fmt.Errorf("generating certificates: %w", err)
	}
	env.ca, env.cert, env.key = files.CA, files.Cert, files.Key
	pem, err := os.ReadFile(files.CA)
	if err != nil {
		return err
	}
	env.roots = x509.NewCertPool()
	if !env.roots.AppendCertsFromPEM(pem) {
		return fmt.Errorf("no certificate in %s", files.CA)
	}
	env.testdata, err = filepath.Abs("testdata")
	if err != nil {
		return err
	}
	// Every client here talks to 127.0.0.1; a proxy from the environment
	// (go-xmpp honours HTTP_PROXY) would only get in the way.
	for _, v := range []string{"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"} {
		os.Unsetenv(v)
	}
	return nil
}

// tlsConfig is what every Go client uses: the test CA and the name
// "localhost".
func tlsConfig() *tls.Config {
	return &tls.Config{ServerName: "localhost", RootCAs: env.roots, MinVersion: tls.VersionTLS12}
}

// requireClient skips the test (or fails it under STOA_REQUIRE_CLIENTS=1)
// when a third-party client is not installed. check returns nil when the
// client can run; pkg is the Debian package that provides it.
func requireClient(t *testing.T, name, pkg string, check func() error) {
	t.Helper()
	err := check()
	if err == nil {
		return
	}
	msg := fmt.Sprintf("%s is not available (%v); install it with: sudo apt-get update && sudo apt-get install -y %s", name, err, pkg)
	if os.Getenv("STOA_REQUIRE_CLIENTS") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// python is the interpreter that owns Debian's Python packages; the
// python3 first on PATH may be another one (pyenv) that cannot import them.
const python = "/usr/bin/python3"

func requirePython(t *testing.T, module, pkg string) {
	t.Helper()
	requireClient(t, "Python module "+module, pkg, func() error {
		out, err := exec.Command(python, "-c", "import "+module).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s -c 'import %s': %v: %s", python, module, err, out)
		}
		return nil
	})
}
