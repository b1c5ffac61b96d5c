// A prebuilt JupyterLab extension without a build step: the module-federation container
// JupyterLab loads from package.json's jupyterlab._build.load, whose one module, "./style",
// adds style.css (next to this file) to the page.
(function () {
  var here = document.currentScript.src.replace(/[^/]*$/, "");
  (window._JUPYTERLAB = window._JUPYTERLAB || {})["nbconfine-lab"] = {
    init: function () {},
    get: function (module) {
      if (module !== "./style") {
        return Promise.reject(new Error("nbconfine-lab has no module " + module));
      }
      return Promise.resolve(function () {
        var link = document.createElement("link");
        link.rel = "stylesheet";
        link.href = here + "style.css";
        document.head.appendChild(link);
        return {};
      });
    }
  };
})();
