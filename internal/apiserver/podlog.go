package apiserver

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// agentClient reaches node agents for pods/log. Agents serve plain HTTP
// for now; node TLS comes with node identities.
var agentClient = &http.Client{Transport: &http.Transport{
	DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	ResponseHeaderTimeout: 30 * time.Second,
}}

// podLogQuery are the PodLogOptions forwarded to the agent, under the
// names kubelet's /containerLogs endpoint takes.
var podLogQuery = []string{"follow", "previous", "timestamps", "tailLines", "sinceSeconds", "sinceTime", "limitBytes"}

// podLog serves GET pods/{name}/log by streaming the container's log from
// the agent of the pod's node, as upstream's API server proxies to kubelet.
func (h *handler) podLog(ctx context.Context) error {
	obj, _, err := h.s.store.get(ctx, h.res, h.info.Namespace, h.info.Name)
	if err != nil {
		return err
	}
	pod := obj.(*corev1.Pod)
	q := h.r.URL.Query()
	container, err := logContainer(pod, q.Get("container"))
	if err != nil {
		return err
	}
	for _, p := range []string{"tailLines", "sinceSeconds", "limitBytes"} {
		if v := q.Get(p); v != "" {
			if n, err := strconv.ParseInt(v, 10, 64); err != nil || n < 0 {
				return apierrors.NewBadRequest(fmt.Sprintf("%s must be a non-negative integer, got %q", p, v))
			}
		}
	}
	if pod.Spec.NodeName == "" {
		return apierrors.NewBadRequest(fmt.Sprintf("pod %s does not have a host assigned", pod.Name))
	}
	nodes := h.s.resources[schema.GroupVersionResource{Version: "v1", Resource: "nodes"}]
	if nodes == nil {
		return apierrors.NewInternalError(fmt.Errorf("nodes are not served"))
	}
	nobj, _, err := h.s.store.get(ctx, nodes, "", pod.Spec.NodeName)
	if err != nil {
		return apierrors.NewInternalError(fmt.Errorf("node %s of pod %s: %w", pod.Spec.NodeName, pod.Name, err))
	}
	target, err := agentLogURL(nobj.(*corev1.Node), pod, container, q)
	if err != nil {
		return apierrors.NewBadRequest(err.Error())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	resp, err := agentClient.Do(req)
	if err != nil {
		return apierrors.NewInternalError(fmt.Errorf("get logs from node %s: %w", pod.Spec.NodeName, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		text := strings.TrimSpace(string(msg))
		switch resp.StatusCode {
		case http.StatusNotFound:
			return apierrors.NewBadRequest(text)
		default:
			return apierrors.NewInternalError(fmt.Errorf("node %s: %s", pod.Spec.NodeName, text))
		}
	}
	h.w.Header().Set("Content-Type", "text/plain")
	h.w.WriteHeader(http.StatusOK)
	flusher, _ := h.w.(http.Flusher)
	buf := make([]byte, 32*1024)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := h.w.Write(buf[:n]); werr != nil {
				return nil
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if err != nil {
			return nil // the status line is sent: an error can only end the stream
		}
	}
}

// logContainer picks the container whose log is asked for: the named one,
// else the default-container annotation's, else the pod's only container.
func logContainer(pod *corev1.Pod, name string) (string, error) {
	var all []string
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			all = append(all, c.Name)
		}
	}
	for _, c := range pod.Spec.EphemeralContainers {
		all = append(all, c.Name)
	}
	if name == "" {
		name = pod.Annotations["kubectl.kubernetes.io/default-container"]
	}
	if name == "" {
		if len(pod.Spec.Containers) == 1 {
			return pod.Spec.Containers[0].Name, nil
		}
		return "", apierrors.NewBadRequest(fmt.Sprintf("a container name must be specified for pod %s, choose one of: %v", pod.Name, all))
	}
	for _, c := range all {
		if c == name {
			return name, nil
		}
	}
	return "", apierrors.NewBadRequest(fmt.Sprintf("container %s is not valid for pod %s", name, pod.Name))
}

// agentLogURL is the URL of kubelet's /containerLogs endpoint on the
// node's agent, carrying the log options of q.
func agentLogURL(node *corev1.Node, pod *corev1.Pod, container string, q url.Values) (string, error) {
	host := ""
	for _, want := range []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeExternalIP, corev1.NodeHostName} {
		for _, a := range node.Status.Addresses {
			if a.Type == want && host == "" {
				host = a.Address
			}
		}
	}
	port := node.Status.DaemonEndpoints.KubeletEndpoint.Port
	if host == "" || port == 0 {
		return "", fmt.Errorf("node %s reports no agent endpoint (address and daemonEndpoints.kubeletEndpoint.port)", node.Name)
	}
	fwd := url.Values{}
	for _, p := range podLogQuery {
		if v := q.Get(p); v != "" {
			fwd.Set(p, v)
		}
	}
	u := url.URL{
		Scheme:   "http",
		Host:     net.JoinHostPort(host, strconv.Itoa(int(port))),
		Path:     "/containerLogs/" + url.PathEscape(pod.Namespace) + "/" + url.PathEscape(pod.Name) + "/" + url.PathEscape(container),
		RawQuery: fwd.Encode(),
	}
	return u.String(), nil
}
