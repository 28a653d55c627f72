// Copy buttons of the badge snippets (templates/registry/_badge_snippets.html).
// One delegated listener, installed once even if the fragment is swapped in again.
(function () {
  if (window.badgeSnippetsCopyInstalled) return;
  window.badgeSnippetsCopyInstalled = true;
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy-target]");
    if (!button) return;
    var source = document.getElementById(button.getAttribute("data-copy-target"));
    if (!source) return;
    var text = source.value !== undefined ? source.value : source.textContent;
    var done = function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done);
    } else {
      source.select();
      document.execCommand("copy");
      done();
    }
  });
})();
