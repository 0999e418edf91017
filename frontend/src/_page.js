// What every page script shares, without NiiVue: the page's settings (#ioplan-config), its
// state (window.ioplan), the token given as ?token= passed on to links and requests.
export const cfg = JSON.parse(document.getElementById("ioplan-config").textContent);
export const token = new URLSearchParams(window.location.search).get("token");
export const state = { ready: false, error: null };
window.ioplan = { cfg, state };

export function withToken(url) {
  if (!token) return url;
  return `${url}${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}`;
}

// a JSON request with the token; a refusal's one-line error becomes the thrown message
export async function api(url, options = {}) {
  const headers = Object.assign({ "Content-Type": "application/json" }, options.headers || {});
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(url, Object.assign({}, options, { headers }));
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

// the page's links keep the token
export function keepLinks() {
  for (const a of document.querySelectorAll("a[href^='/']")) {
    a.setAttribute("href", withToken(a.getAttribute("href")));
  }
}
