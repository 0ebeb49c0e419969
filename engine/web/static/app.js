// Small behaviours for server-rendered pages (no inline script: the CSP forbids it).
document.addEventListener("DOMContentLoaded", () => {
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.submit());
  }
  paint(document);
  for (const button of document.querySelectorAll("[data-toggle]")) {
    const target = document.getElementById(button.dataset.toggle);
    button.addEventListener("click", () => {
      const open = target.classList.toggle("open");
      button.setAttribute("aria-expanded", String(open));
    });
  }
});
// an option's colour from the metadata (the CSP allows no style attribute: set it from a data- attribute)
function paint(root) {
  for (const tagged of root.querySelectorAll(".pill[data-color]")) tagged.style.borderLeftColor = tagged.dataset.color;
}
document.addEventListener("htmx:afterSwap", (event) => paint(event.target));
// htmx keeps a copy of the page for the back button: without the painted style attributes,
// which the CSP would refuse when the copy is put back; they are painted again after
document.addEventListener("htmx:beforeHistorySave", () => {
  for (const tagged of document.querySelectorAll("[data-color][style]")) tagged.removeAttribute("style");
});
document.addEventListener("htmx:historyRestore", () => paint(document));
// htmx (when present) sends the session's CSRF token on every unsafe request
document.addEventListener("htmx:configRequest", (event) => {
  const meta = document.querySelector('meta[name="csrf-token"]');
  if (meta) event.detail.headers["X-CSRF-Token"] = meta.content;
});
