package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drover/drover/internal/runtime/process"
	"github.com/drover/drover/internal/testenv"
)

// TestProcessRuntime runs the pod life cycle on host processes: a server
// reaching Ready through a tcpSocket probe on its pod IP, env from the
// downward API, a crashing container restarting, previous logs, deletion.
func TestProcessRuntime(t *testing.T) {
	env := testenv.Start(t)
	rt, err := process.New(process.Config{StateDir: t.TempDir(), PodSubnet: "127.77.0.0/16", Logger: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, env, rt, Config{BackoffBase: 100 * time.Millisecond, BackoffCap: 400 * time.Millisecond})
	ctx := context.Background()

	// sleep stands in for a long-running program; an exec probe (run with
	// the container's environment) makes it Ready.
	grace := int64(2)
	server := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "server", Namespace: "default"},
		Spec: corev1.PodSpec{NodeName: "node-1", TerminationGracePeriodSeconds: &grace, Containers: []corev1.Container{{
			Name: "main", Image: "unused", Command: []string{"sh", "-c", "echo serving on $POD_IP as $POD_NAME; exec sleep 600"},
			Env: []corev1.EnvVar{{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}},
			ReadinessProbe: &corev1.Probe{
				ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", `test "$POD_NAME" = server`}}},
				PeriodSeconds: 1,
			},
		}}},
	}
	crash := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "crash", Namespace: "default"},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{
			Name: "main", Image: "unused", Command: []string{"sh", "-c", "echo attempt; exit 2"},
		}}},
	}
	createPod(t, env, server)
	createPod(t, env, crash)

	pod := waitPod(t, env, "server", time.Minute, podReady)
	if ip := net.ParseIP(pod.Status.PodIP); ip == nil || !strings.HasPrefix(pod.Status.PodIP, "127.77.") {
		t.Errorf("pod IP %q, want one from 127.77.0.0/16", pod.Status.PodIP)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		body, code := get(t, "http://"+a.info.Addr+"/containerLogs/default/server/main")
		if code != http.StatusOK || !strings.Contains(body, "serving on "+pod.Status.PodIP+" as server") {
			return fmt.Errorf("logs: %d %q", code, body)
		}
		return nil
	})

	pod = waitPod(t, env, "crash", time.Minute, func(p *corev1.Pod) error {
		if len(p.Status.ContainerStatuses) == 0 || p.Status.ContainerStatuses[0].RestartCount < 2 {
			return errors.New("not restarted twice yet")
		}
		return nil
	})
	if term := pod.Status.ContainerStatuses[0].LastTerminationState.Terminated; term == nil || term.ExitCode != 2 {
		t.Errorf("lastState %+v, want exit code 2", pod.Status.ContainerStatuses[0].LastTerminationState)
	}
	if body, code := get(t, "http://"+a.info.Addr+"/containerLogs/default/crash/main?previous=true"); code != http.StatusOK || body != "attempt\n" {
		t.Errorf("previous logs: %d %q", code, body)
	}

	if err := env.Kube.CoreV1().Pods("default").Delete(ctx, "server", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		if _, err := env.Kube.CoreV1().Pods("default").Get(ctx, "server", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("pod still there: %v", err)
		}
		return nil
	})
}
