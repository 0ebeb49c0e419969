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
