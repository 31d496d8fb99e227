#!/usr/bin/env node
// render.js - renders formulas with the pinned MathJax (package.json), as a
// Markdown viewer would, and reports every one that MathJax cannot render.
//
// Usage: node render.js FORMULAS.json
//   FORMULAS.json holds an array of {"origin": "...", "tex": "..."}.
// Prints one line per failing formula: JSON {"index", "origin", "error"},
// then a summary line on stderr.  Exit status: 0 all rendered, 1 some
// failed, 2 bad usage or MathJax missing.
//
// Each formula goes through TeX -> MathML (an merror node is a failure) and
// through TeX -> SVG (a data-mjx-error attribute is a failure).  The TeX
// packages are base, ams and boldsymbol: what MathJax 3's default
// components load for the macros matdiff writes (boldsymbol through
// autoload).  'noundefined' is left out on purpose, so that an unknown
// macro is an error here rather than red text on a page.
'use strict';

const fs = require('fs');

let mj;
try {
  mj = {
    mathjax: require('mathjax-full/js/mathjax.js').mathjax,
    TeX: require('mathjax-full/js/input/tex.js').TeX,
    SVG: require('mathjax-full/js/output/svg.js').SVG,
    liteAdaptor: require('mathjax-full/js/adaptors/liteAdaptor.js').liteAdaptor,
    RegisterHTMLHandler:
      require('mathjax-full/js/handlers/html.js').RegisterHTMLHandler,
    SerializedMmlVisitor:
      require('mathjax-full/js/core/MmlTree/SerializedMmlVisitor.js')
        .SerializedMmlVisitor,
    STATE: require('mathjax-full/js/core/MathItem.js').STATE,
  };
  require('mathjax-full/js/input/tex/base/BaseConfiguration.js');
  require('mathjax-full/js/input/tex/ams/AmsConfiguration.js');
  require('mathjax-full/js/input/tex/boldsymbol/BoldsymbolConfiguration.js');
} catch (e) {
  console.error('render.js: MathJax is not installed: ' + e.message);
  console.error("render.js: run 'npm ci --prefix tests/latex' first");
  process.exit(2);
}

function main(argv) {
  if (argv.length !== 1) {
    console.error('usage: node render.js FORMULAS.json');
    return 2;
  }
  const formulas = JSON.parse(fs.readFileSync(argv[0], 'utf8'));
  const adaptor = mj.liteAdaptor();
  mj.RegisterHTMLHandler(adaptor);
  const newDoc = () => {
    const tex = new mj.TeX({packages: ['base', 'ams', 'boldsymbol']});
    const svg = new mj.SVG({fontCache: 'none'});
    return mj.mathjax.document('', {InputJax: tex, OutputJax: svg});
  };
  let doc = newDoc();
  const visitor = new mj.SerializedMmlVisitor();
  let failed = 0;
  formulas.forEach((f, index) => {
    let error = null;
    try {
      const mml = visitor.visitTree(
        doc.convert(f.tex, {display: true, end: mj.STATE.CONVERT}));
      const m = /<merror\b([^>]*)>/.exec(mml);
      if (m) {
        const msg = /data-mjx-error="([^"]*)"/.exec(m[1]);
        error = 'MathML: ' + (msg ? msg[1] : 'merror');
      }
      if (!error) {
        const out = adaptor.outerHTML(doc.convert(f.tex, {display: true}));
        const s = /data-mjx-error="([^"]*)"/.exec(out);
        if (s) error = 'SVG: ' + s[1];
      }
    } catch (e) {
      error = 'exception: ' + (e && e.message ? e.message : String(e));
      doc = newDoc(); // a throw may leave the document in a bad state
    }
    if (error) {
      failed++;
      console.log(JSON.stringify({index, origin: f.origin, error}));
    }
  });
  console.error(`render.js: ${formulas.length - failed} of ` +
                `${formulas.length} formulas rendered`);
  return failed ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
