package fleetcert

// AddToView adds registration c to v as Load does, for the view's memory
// test.
func AddToView(v *AdmissionView, c *Certificate) {
	k, ok := viewKey(c.ID)
	if !ok {
		panic("AddToView: certificate id " + c.ID)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.addLocked(k, v.registrationLocked(c))
}

// RegistrationsQueued returns how many registrations wait in r's registrar.
func RegistrationsQueued(r *Registry) int {
	r.registrar.mu.Lock()
	defer r.registrar.mu.Unlock()
	return len(r.registrar.queue)
}
