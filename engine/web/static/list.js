// List page: select rows for a bulk action, show the inputs the chosen action needs, confirm a
// delete. Delegated from document, so rows swapped in by htmx need no re-binding.
(() => {
  const showFor = (form) => {
    const select = form.querySelector("[data-bulk-action]");
    if (!select) return;
    const action = select.value;
    for (const part of form.querySelectorAll("[data-bulk-for]")) part.hidden = part.dataset.bulkFor !== action;
    const rule = form.querySelector("[data-bulk-rule]");
    const option = select.selectedOptions[0];
    if (rule && option && option.dataset.rule) rule.value = option.dataset.rule;
  };
  const init = (root) => { for (const form of root.querySelectorAll("form.bulk-bar")) showFor(form); };
  document.addEventListener("DOMContentLoaded", () => init(document));
  document.addEventListener("htmx:afterSwap", (event) => init(event.target));
  document.addEventListener("change", (event) => {
    const target = event.target;
    if (target.matches("[data-bulk-action]")) showFor(target.form);
    // a choice in the filter bar applies at once; typed values apply with Enter or the Apply button
    if (target.closest("form.filter-bar") && target.matches('input[type="checkbox"], input[type="radio"], select')) {
      target.form.requestSubmit();
    }
    if (target.matches("[data-select-all]")) {
      for (const box of document.querySelectorAll('input[name="ids"][form="bulk"]')) box.checked = target.checked;
    }
  });
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!form.matches("form.bulk-bar")) return;
    const chosen = document.querySelectorAll('input[name="ids"][form="bulk"]:checked').length;
    if (form.querySelector("[data-bulk-action]").value === "delete" && chosen &&
        !window.confirm(form.dataset.confirmDelete)) event.preventDefault();
  });
})();
// the filter bar's empty inputs stay out of the URL, which is then short enough to share
document.addEventListener("htmx:configRequest", (event) => {
  if (event.detail.verb !== "get" || !event.detail.elt.matches || !event.detail.elt.matches("form.filter-bar")) return;
  const params = event.detail.parameters;
  for (const key of Array.from(params.keys())) {
    if (params.getAll(key).every((value) => value === "")) params.delete(key);
  }
});
// a filter with a value is marked in the bar (the bar stays in place while the records are swapped)
document.addEventListener("htmx:afterSwap", () => {
  for (const filter of document.querySelectorAll("form.filter-bar details.filter")) {
    const set = Array.from(filter.querySelectorAll("input, select")).some((input) =>
      (input.type === "checkbox" || input.type === "radio") ? input.checked && input.value !== "" : input.value !== "");
    filter.classList.toggle("active", set);
  }
});
