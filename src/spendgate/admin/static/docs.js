// Starts Swagger UI on the admin API's OpenAPI document (the page's data-openapi-url).
// A file of its own, not an inline script, so that the page's Content-Security-Policy can
// allow scripts from the gateway's origin only.
"use strict";
(function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    domNode: root,
    layout: "BaseLayout",
    presets: [SwaggerUIBundle.presets.apis],
    deepLinking: true,
    showCommonExtensions: true,
    validatorUrl: null, // never send the document to an online validator
  });
})();
