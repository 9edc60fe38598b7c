// Regenerate the README's settings table from the code (dist/ must be built).
import { readFileSync, writeFileSync } from 'node:fs';
import { settingsTable, SETTINGS_START, SETTINGS_END } from '../dist/config/docs.js';

const readme = readFileSync('README.md', 'utf8');
const start = readme.indexOf(SETTINGS_START);
const end = readme.indexOf(SETTINGS_END);
if (start < 0 || end < 0) throw new Error('README.md lacks the settings markers');
const next = readme.slice(0, start + SETTINGS_START.length) + '\n' + settingsTable() + '\n' + readme.slice(end);
writeFileSync('README.md', next);
console.log('README.md settings table updated');
