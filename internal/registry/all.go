package registry

// All returns every resource Drover serves, in a stable order: core/v1,
// then apps/v1, autoscaling, coordination, discovery, policy, rbac and
// authorization (access reviews, answered and never stored). Each call
// returns fresh descriptions; autoscaling/v1 HPAs point at the
// autoscaling/v2 entry of the same list as their storage.
func All() []*Resource {
	hpaV2 := HorizontalPodAutoscalersV2()
	return []*Resource{
		Namespaces(),
		Pods(),
		Nodes(),
		Services(),
		Endpoints(),
		Events(),
		ConfigMaps(),
		Secrets(),
		ServiceAccounts(),
		Deployments(),
		ReplicaSets(),
		hpaV2,
		HorizontalPodAutoscalersV1(hpaV2),
		Leases(),
		EndpointSlices(),
		PodDisruptionBudgets(),
		Roles(), ClusterRoles(), RoleBindings(), ClusterRoleBindings(), SelfSubjectAccessReviews(), SelfSubjectRulesReviews(), SubjectAccessReviews(),
	}
}
