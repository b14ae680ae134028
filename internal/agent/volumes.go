package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/drover/drover/internal/runtime"
)

// setupVolumes makes the pod's volumes under dir (the pod's volume
// directory) and returns each volume's host path by name: emptyDir a
// directory, configMap and secret a directory of files written from the
// object, hostPath the host path itself. Volume kinds the agent does not
// support are left out (their mounts are skipped) and listed in skipped.
func setupVolumes(dir string, pod *corev1.Pod, lookup envLookup) (paths map[string]string, skipped []string, err error) {
	paths = map[string]string{}
	for _, v := range pod.Spec.Volumes {
		p := filepath.Join(dir, v.Name)
		switch {
		case v.EmptyDir != nil:
			if err := os.MkdirAll(p, 0o777); err != nil {
				return nil, nil, fmt.Errorf("volume %s: %w", v.Name, err)
			}
			os.Chmod(p, 0o777) // as the kubelet: writable by any user in the pod
		case v.ConfigMap != nil:
			cm, err := lookup.ConfigMap(pod.Namespace, v.ConfigMap.Name)
			if err != nil {
				if optional(v.ConfigMap.Optional) {
					cm = &corev1.ConfigMap{}
				} else {
					return nil, nil, fmt.Errorf("volume %s: configmap %q: %w", v.Name, v.ConfigMap.Name, err)
				}
			}
			files := map[string][]byte{}
			for k, s := range cm.Data {
				files[k] = []byte(s)
			}
			for k, b := range cm.BinaryData {
				files[k] = b
			}
			if err := writeFiles(p, files, v.ConfigMap.Items, mode(v.ConfigMap.DefaultMode, 0o644)); err != nil {
				return nil, nil, fmt.Errorf("volume %s: %w", v.Name, err)
			}
		case v.Secret != nil:
			s, err := lookup.Secret(pod.Namespace, v.Secret.SecretName)
			if err != nil {
				if optional(v.Secret.Optional) {
					s = &corev1.Secret{}
				} else {
					return nil, nil, fmt.Errorf("volume %s: secret %q: %w", v.Name, v.Secret.SecretName, err)
				}
			}
			if err := writeFiles(p, s.Data, v.Secret.Items, mode(v.Secret.DefaultMode, 0o644)); err != nil {
				return nil, nil, fmt.Errorf("volume %s: %w", v.Name, err)
			}
		case v.HostPath != nil:
			p = v.HostPath.Path
			if t := v.HostPath.Type; t != nil && (*t == corev1.HostPathDirectoryOrCreate) {
				os.MkdirAll(p, 0o755)
			}
		default:
			skipped = append(skipped, v.Name)
			continue
		}
		paths[v.Name] = p
	}
	return paths, skipped, nil
}

func mode(m *int32, def os.FileMode) os.FileMode {
	if m == nil {
		return def
	}
	return os.FileMode(*m)
}

// writeFiles writes data (all keys, or only items, under their paths) into
// dir.
func writeFiles(dir string, data map[string][]byte, items []corev1.KeyToPath, perm os.FileMode) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	write := func(rel string, b []byte, perm os.FileMode) error {
		if filepath.IsAbs(rel) || strings.Contains(rel, "..") {
			return fmt.Errorf("path %q must be relative and not contain '..'", rel)
		}
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		return os.WriteFile(p, b, perm)
	}
	if len(items) == 0 {
		for k, b := range data {
			if err := write(k, b, perm); err != nil {
				return err
			}
		}
		return nil
	}
	for _, it := range items {
		b, ok := data[it.Key]
		if !ok {
			return fmt.Errorf("key %q not found", it.Key)
		}
		if err := write(it.Path, b, mode(it.Mode, perm)); err != nil {
			return err
		}
	}
	return nil
}

// mountsFor turns a container's volume mounts into runtime mounts.
func mountsFor(c *corev1.Container, paths map[string]string) []runtime.Mount {
	var out []runtime.Mount
	for _, m := range c.VolumeMounts {
		p, ok := paths[m.Name]
		if !ok {
			continue
		}
		if m.SubPath != "" {
			p = filepath.Join(p, m.SubPath)
			os.MkdirAll(p, 0o777)
		}
		out = append(out, runtime.Mount{ContainerPath: m.MountPath, HostPath: p, ReadOnly: m.ReadOnly})
	}
	return out
}
