#!/usr/bin/env node
'use strict';
process.exitCode = require('../dist/cjs/cli/main.js').main(process.argv.slice(2));
