// The application form, enhanced (it works without this file: the server shows the word rule,
// the count when the page was rendered, and the hosted-only answers for a hosted application).
// - A live word count beside a textarea marked data-min-words / data-max-words, written into
//   the element named by data-word-counter.
// - Sections marked data-shown-for-kind="<kind>" show while that kind is chosen.
// Loaded as a file: the Content-Security-Policy allows no inline script.
(function () {
  "use strict";

  function countWords(text) {
    var words = text.trim().split(/\s+/);
    return words[0] === "" ? 0 : words.length;
  }

  function followWordCount(textarea) {
    var counter = document.getElementById(textarea.getAttribute("data-word-counter"));
    if (!counter) {
      return;
    }
    var min = parseInt(textarea.getAttribute("data-min-words"), 10);
    var max = parseInt(textarea.getAttribute("data-max-words"), 10);
    function update() {
      var words = countWords(textarea.value);
      var text = words + (words === 1 ? " word" : " words");
      var outside = words > 0 && (words < min || words > max);
      if (words > 0 && words < min) {
        text += " (" + (min - words) + " more to submit)";
      } else if (words > max) {
        text += " (" + (words - max) + " too many to submit)";
      }
      counter.textContent = text;
      counter.classList.toggle("outside", outside);
    }
    textarea.addEventListener("input", update);
    update();
  }

  function followKind(form) {
    var sections = form.querySelectorAll("[data-shown-for-kind]");
    if (!sections.length) {
      return;
    }
    function update() {
      var chosen = form.querySelector("input[name=kind]:checked");
      var kind = chosen ? chosen.value : "";
      sections.forEach(function (section) {
        section.hidden = section.getAttribute("data-shown-for-kind") !== kind;
      });
    }
    form.addEventListener("change", function (event) {
      if (event.target.name === "kind") {
        update();
      }
    });
    update();
  }

  function enhance() {
    document.querySelectorAll("textarea[data-word-counter]").forEach(followWordCount);
    document.querySelectorAll("form.application-form").forEach(followKind);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", enhance);
  } else {
    enhance();
  }
})();
