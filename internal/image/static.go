package image

import (
	"debug/elf"
	"fmt"
	"path/filepath"
)

// IsStatic reports whether the ELF executable at path is statically linked
// (has no program interpreter), so it runs in an image with nothing else.
func IsStatic(path string) (bool, error) {
	f, err := elf.Open(path)
	if err != nil {
		return false, fmt.Errorf("image: %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false, nil
		}
	}
	return true, nil
}

// BuildStatic makes an image tagged ref from the static executable bin,
// placed at /<base name> and run with args, and writes it to a tarball in
// dir, whose path it returns. Where no Go toolchain is at hand, a static
// drover binary can so become its own pause image:
//
//	exe, _ := os.Executable()
//	tar, err := image.BuildStatic(exe, image.PauseImage, []string{"pause"}, dir)
func BuildStatic(bin, ref string, args []string, dir string) (string, error) {
	static, err := IsStatic(bin)
	if err != nil {
		return "", err
	}
	if !static {
		return "", fmt.Errorf("image: %s is dynamically linked; build it with CGO_ENABLED=0", bin)
	}
	img, err := FromBinary(Spec{Binary: bin, Args: args})
	if err != nil {
		return "", err
	}
	file := filepath.Join(dir, filepath.Base(bin)+".tar")
	if err := WriteTarball(img, ref, file); err != nil {
		return "", err
	}
	return file, nil
}
