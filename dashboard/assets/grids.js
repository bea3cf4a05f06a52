/* Electronic grid map: how each drawn unit looks and what its tooltip says. The server sends
   each unit's figures and colour class once; words and colours come in the layer's hideout. */
(function () {
  "use strict";
  var ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;" };

  function esc(s) {
    // Leaflet inserts a tooltip string as HTML: stored names are text and stay text.
    return String(s).replace(/[&<>"']/g, function (c) { return ESC[c]; });
  }

  function hide(context) {
    return (context && context.hideout) || {};
  }

  var map = {
    unitStyle: function (feature, context) {
      var p = feature.properties || {};
      var h = hide(context);
      var palette = h.palette || ["#0b3d5c"];
      var c = p.c || 0;
      return {
        color: p.generated ? "#9fb3c8" : "#4cc9f0",
        weight: p.level === "county" ? 2 : 1.2,
        opacity: 0.95,
        dashArray: p.generated ? "4 3" : null,
        fillColor: palette[Math.min(c, palette.length - 1)],
        fillOpacity: c ? 0.55 : 0.15
      };
    },
    unitTooltip: function (feature, layer, context) {
      var p = feature.properties || {};
      // Runs before the path exists, so the class lands on it when Leaflet draws it: tests
      // and the print stylesheet find the boundaries by it.
      layer.options.className = "gc-grids-unit gc-grids-" + (p.level || "unit");
      var h = hide(context);
      var name = esc(p.name || p.code || "");
      var gen = h.generated || "";
      if (p.generated && gen && name.indexOf("（" + gen + "）") < 0 && name.indexOf("（生成）") < 0) {
        name += "（" + esc(gen) + "）";
      }
      var parts = (h.fields || []).map(function (f, i) {
        var v = p[f];
        return esc(h.labels[i]) + " " + (v === null || v === undefined ? esc(h.none || "—") : v);
      });
      layer.bindTooltip("<b>" + name + "</b><br>" + parts.join(" · "), { sticky: true });
    }
  };
  var clientside = {
    print: function (n) {
      if (n) { window.print(); }
      return n || 0;
    }
  };
  window.gridccGrids = Object.assign({}, window.gridccGrids, { map: map });
  window.dash_clientside = Object.assign({}, window.dash_clientside, { gridccGrids: clientside });
})();
