// Wave Console glue (no inline scripts: the Content-Security-Policy allows only files like this).
// A polled fragment sends the version it shows; the server answers 204 (nothing to swap) while
// it is current.
document.addEventListener("htmx:configRequest", (event) => {
  const version = event.detail.elt.dataset ? event.detail.elt.dataset.version : undefined;
  if (version) event.detail.headers["X-Console-Version"] = version;
});
