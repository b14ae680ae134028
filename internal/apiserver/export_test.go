package apiserver

// SetNameSuffix replaces the random suffix of generated names for a test;
// the returned func restores it.
func SetNameSuffix(f func() string) (restore func()) {
	old := nameSuffix
	nameSuffix = f
	return func() { nameSuffix = old }
}
