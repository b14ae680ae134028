package containerd

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Find returns the path of the containerd executable: from PATH, else
// /usr/bin/containerd or /usr/local/bin/containerd.
func Find() (string, error) {
	return findExecutable("containerd", "/usr/bin/containerd", "/usr/local/bin/containerd")
}

// CNIBinDirs are the directories searched for CNI plugins, in order: where
// Debian's containernetworking-plugins puts them, then the upstream default.
var CNIBinDirs = []string{DefaultCNIBinDir, "/opt/cni/bin"}

// cniPlugins are the plugins Drover's network configuration uses
// (containerd itself needs loopback).
var cniPlugins = []string{"bridge", "host-local", "portmap", "loopback"}

// FindCNIBinDir returns the first of CNIBinDirs that holds every plugin
// Drover needs.
func FindCNIBinDir() (string, error) {
	for _, dir := range CNIBinDirs {
		if missingPlugins(dir) == nil {
			return dir, nil
		}
	}
	return "", fmt.Errorf("containerd: no CNI plugin directory with %s in %s (install containernetworking-plugins)",
		strings.Join(cniPlugins, ", "), strings.Join(CNIBinDirs, " or "))
}

func missingPlugins(dir string) []string {
	var missing []string
	for _, p := range cniPlugins {
		if fi, err := os.Stat(filepath.Join(dir, p)); err != nil || fi.Mode()&0o111 == 0 {
			missing = append(missing, p)
		}
	}
	return missing
}

// Check reports what this machine lacks to run Drover's containerd, or nil:
// root, the containerd, runc and ctr commands, and the CNI plugins. The
// error says what to install.
func Check() error {
	var problems []string
	if _, err := Find(); err != nil {
		problems = append(problems, strings.TrimPrefix(err.Error(), "containerd: "))
	}
	if _, err := findExecutable("runc", "/usr/sbin/runc", "/usr/bin/runc", "/usr/local/sbin/runc"); err != nil {
		problems = append(problems, strings.TrimPrefix(err.Error(), "containerd: "))
	}
	if _, err := findExecutable("ctr", "/usr/bin/ctr", "/usr/local/bin/ctr"); err != nil {
		problems = append(problems, strings.TrimPrefix(err.Error(), "containerd: "))
	}
	if _, err := FindCNIBinDir(); err != nil {
		problems = append(problems, strings.TrimPrefix(err.Error(), "containerd: "))
	}
	if len(problems) > 0 {
		problems = append(problems, "install with: apt-get install containerd runc containernetworking-plugins")
	}
	if os.Geteuid() != 0 {
		problems = append([]string{"not running as root"}, problems...)
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("containerd: cannot run here: %s", strings.Join(problems, "; "))
}

func findExecutable(name string, fallbacks ...string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, p := range fallbacks {
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errors.New("containerd: no " + name + " in PATH or " + strings.Join(fallbacks, ", "))
}
