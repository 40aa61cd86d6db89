#!/usr/bin/env node
// poracle-gate: the forced command of poracle-bot's SSH key. It lets that key do only what the bot needs
// (list pm2 processes, restart one or all, read a redacted log tail) and logs every decision.
// Install: see README.md beside this file; the wire protocol is in PROTOCOL.md.
// One file, Node.js >= 12, built-in modules only, never a shell.
'use strict';

const childProcess = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const VERSION = '1.0.1';
const PROTOCOL = 1;
const PROGRAM = 'poracle-gate';
const VERBS = ['hello', 'processes', 'restart', 'logs'];
const USAGE = { hello: [], processes: [], restart: ['<name|id|all>'], logs: ['<name|id>', '<lines>'] };
const MAX_COMMAND_BYTES = 256;
// Whitelist, not blacklist: names, numbers, verbs and separators need nothing else, so quotes, $, `,
// ;, &, |, <, >, \, newlines and every other character are refused before anything is interpreted.
const COMMAND_CHARS = /[^A-Za-z0-9_.@: -]/;
const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.@:-]{0,63}$/;
const ID = /^(0|[1-9][0-9]{0,5})$/;
const LINE_COUNT = /^[1-9][0-9]{0,2}$/;
const MAX_LOG_LINES = 200;
const LIST_TIMEOUT_MS = 15000;
const DEFAULT_RESTART_TIMEOUT_S = 60;
const MAX_PM2_OUTPUT = 64 * 1024 * 1024; // jlist carries every process's environment
const OUTPUT_TAIL_LINES = 40;
const MAX_LINE_CHARS = 2000;
const MAX_TAIL_BYTES = 4 * 1024 * 1024;
const ROTATE_LOG_BYTES = 10 * 1024 * 1024;
const REDACTED = '[REDACTED]';
const SECRET_NAME = /secret|token|pass|pwd|key|credential/i;
// Values too short or too common to hide everywhere they occur without garbling the text.
const MIN_SECRET_CHARS = 4;
const NOT_SECRET = /^(true|false|null|none|yes|no|on|off|undefined)$/i;

// Errors the bot caused (nothing was run: exit 1) versus failures of the gate or pm2 (exit 2).
const REFUSALS = [
  'no-command', 'empty', 'too-long', 'bad-syntax', 'unsupported-protocol', 'unknown-verb', 'not-allowed',
  'bad-arguments', 'unknown-process',
];

class GateError extends Error {
  constructor(code, message, extra) {
    super(message);
    this.code = code;
    this.extra = extra || {};
  }
}

function exitCodeFor(error) {
  return REFUSALS.indexOf(error) >= 0 ? 1 : 2;
}

// ----------------------------------------------------------------------------------------- request

function parseCommand(text) {
  if (text === undefined) {
    throw new GateError('no-command', 'no command: this key only runs poracle-gate commands, logins are refused');
  }
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > MAX_COMMAND_BYTES) {
    throw new GateError('too-long', 'command is ' + bytes + ' bytes, at most ' + MAX_COMMAND_BYTES + ' allowed');
  }
  const bad = COMMAND_CHARS.exec(text);
  if (bad) {
    throw new GateError('bad-syntax', 'character ' + JSON.stringify(bad[0]) + ' is not allowed in a command');
  }
  const tokens = text.split(' ').filter(function (t) { return t !== ''; });
  if (tokens.length === 0) {
    throw new GateError('empty', 'empty command');
  }
  if (tokens[0] !== PROGRAM || tokens.length < 3 || !/^[0-9]{1,3}$/.test(tokens[1])) {
    throw new GateError('bad-syntax', 'a command is "' + PROGRAM + ' <protocol> <verb> [arguments]"');
  }
  const protocol = Number(tokens[1]);
  if (protocol !== PROTOCOL) {
    throw new GateError('unsupported-protocol', 'this gate speaks protocol ' + PROTOCOL + ', not ' + protocol,
      { protocols: [PROTOCOL] });
  }
  const verb = tokens[2];
  if (VERBS.indexOf(verb) < 0) {
    throw new GateError('unknown-verb', PROGRAM + ' ' + VERSION + ' does not know the verb ' + JSON.stringify(verb),
      { verbs: VERBS });
  }
  return { verb: verb, args: tokens.slice(3) };
}

// Digits are an id, as pm2 reads them; "all" is never a name.
function parseTarget(token, allowAll) {
  if (allowAll && token === 'all') return { all: true };
  if (ID.test(token)) return { id: Number(token) };
  if (NAME.test(token) && token !== 'all' && !/^[0-9]+$/.test(token)) return { name: token };
  throw new GateError('bad-arguments', 'not a pm2 process name or id: ' + JSON.stringify(token));
}

// The arguments of a known verb, checked for form only (the live pm2 list is checked later).
function checkArguments(verb, args) {
  if (args.length !== USAGE[verb].length) {
    throw new GateError('bad-arguments', 'usage: ' + [PROGRAM, PROTOCOL, verb].concat(USAGE[verb]).join(' '));
  }
  if (verb === 'restart') return { target: parseTarget(args[0], true) };
  if (verb === 'logs') {
    if (!LINE_COUNT.test(args[1]) || Number(args[1]) > MAX_LOG_LINES) {
      throw new GateError('bad-arguments',
        'lines must be 1 to ' + MAX_LOG_LINES + ', not ' + JSON.stringify(args[1]));
    }
    return { target: parseTarget(args[0], false), lines: Number(args[1]) };
  }
  return {};
}

// ------------------------------------------------------------------------------------------ options

function parseArgs(argv) {
  const known = {
    '--allow': 'allow', '--pm2': 'pm2', '--log': 'log', '--config': 'config', '--restart-timeout': 'restart_timeout',
  };
  const options = {};
  argv.forEach(function (arg) {
    const eq = arg.indexOf('=');
    const key = known[eq > 0 ? arg.slice(0, eq) : arg];
    if (!key || eq < 0 || eq === arg.length - 1) {
      throw new GateError('bad-config', 'unknown or empty option ' + JSON.stringify(arg) +
        ' (known: ' + Object.keys(known).join('=, ') + '=)');
    }
    const value = arg.slice(eq + 1);
    options[key] = key === 'allow' ? value.split(',') : value;
  });
  return options;
}

function readConfig(file, explicit) {
  let text;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if (err.code === 'ENOENT' && !explicit) return {};
    throw new GateError('bad-config', 'cannot read config ' + file + ': ' + err.message);
  }
  let config;
  try {
    config = JSON.parse(text);
  } catch (err) {
    throw new GateError('bad-config', 'config ' + file + ' is not JSON: ' + err.message);
  }
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new GateError('bad-config', 'config ' + file + ' must be a JSON object');
  }
  Object.keys(config).forEach(function (key) {
    if (['allow', 'pm2', 'log', 'restart_timeout'].indexOf(key) < 0) {
      throw new GateError('bad-config', 'config ' + file + ': unknown key ' + JSON.stringify(key));
    }
  });
  if (config.allow !== undefined && !(Array.isArray(config.allow) && config.allow.every(isString))) {
    throw new GateError('bad-config', 'config ' + file + ': "allow" must be a list of verbs');
  }
  return config;
}

function isString(value) {
  return typeof value === 'string';
}

function configDir(env, home) {
  return env.XDG_CONFIG_HOME || path.join(home, '.config');
}

function defaultLogPath(env, home) {
  return path.join(env.XDG_STATE_HOME || path.join(home, '.local', 'state'), PROGRAM, 'gate.log');
}

// Options from the authorized_keys line win over the config file, except "allow": each source can only
// take verbs away, so the verbs allowed are those both allow. "hello" is always allowed.
function resolveOptions(args, config, env, home) {
  const allowed = VERBS.filter(function (verb) {
    return [args.allow, config.allow].every(function (list) { return !list || list.indexOf(verb) >= 0; });
  });
  [args.allow, config.allow].forEach(function (list) {
    (list || []).forEach(function (verb) {
      if (VERBS.indexOf(verb) < 0) {
        throw new GateError('bad-config', 'cannot allow unknown verb ' + JSON.stringify(verb));
      }
    });
  });
  const given = args.restart_timeout !== undefined ? args.restart_timeout : config.restart_timeout;
  const restartTimeout = given === undefined ? DEFAULT_RESTART_TIMEOUT_S : Number(given);
  if (!(restartTimeout >= 1 && restartTimeout <= 3600)) {
    throw new GateError('bad-config', 'restart timeout must be 1 to 3600 seconds, not ' + JSON.stringify(given));
  }
  return {
    allow: ['hello'].concat(allowed.filter(function (verb) { return verb !== 'hello'; })),
    pm2: args.pm2 || config.pm2 || null,
    log: args.log || config.log || defaultLogPath(env, home),
    restartTimeoutMs: restartTimeout * 1000,
  };
}

function loadOptions(argv, env, home) {
  const args = parseArgs(argv);
  const config = readConfig(args.config || path.join(configDir(env, home), PROGRAM + '.json'), !!args.config);
  return resolveOptions(args, config, env, home);
}

// ---------------------------------------------------------------------------------------------- pm2

function isExecutableFile(file) {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch (err) {
    return false;
  }
}

function compareVersionsDescending(a, b) {
  const pa = a.replace(/^v/, '').split('.').map(Number);
  const pb = b.replace(/^v/, '').split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    if (pa[i] !== pb[i]) return pb[i] - pa[i];
  }
  return 0;
}

function nvmCandidates(home) {
  const root = path.join(home, '.nvm', 'versions', 'node');
  let versions;
  try {
    versions = fs.readdirSync(root).filter(function (v) { return /^v\d+\.\d+\.\d+$/.test(v); });
  } catch (err) {
    return [];
  }
  return versions.sort(compareVersionsDescending).map(function (v) { return path.join(root, v, 'bin', 'pm2'); });
}

// npm's global prefix when it is not node's own: NPM_CONFIG_PREFIX, else a `prefix=` line of ~/.npmrc
// (whose other lines, auth tokens among them, are never used). `~/` and ${HOME} expand as npm does.
function npmPrefix(env, home) {
  let prefix = env.NPM_CONFIG_PREFIX || env.npm_config_prefix;
  if (!prefix) {
    let text;
    try {
      text = fs.readFileSync(path.join(home, '.npmrc'), 'utf8');
    } catch (err) {
      return null;
    }
    const line = text.split(/\r?\n/).map(function (l) { return /^\s*prefix\s*=\s*(.*?)\s*$/.exec(l); })
      .filter(Boolean)[0];
    prefix = line ? line[1].replace(/^(["'])(.*)\1$/, '$2') : '';
  }
  prefix = prefix.replace(/\$\{HOME\}/g, home).replace(/^~(?=\/|$)/, home);
  return path.isAbsolute(prefix) ? prefix : null;
}

// Where pm2 usually is, in order: PATH, beside the node running this gate (npm -g installs there), the
// newest nvm node, npm's configured prefix, npm's usual user prefix, then the system places.
function pm2Candidates(env, home, execPath) {
  const fromPath = (env.PATH || '').split(path.delimiter).filter(Boolean).map(function (dir) {
    return path.join(dir, 'pm2');
  });
  const prefix = npmPrefix(env, home);
  return fromPath.concat(
    [path.join(path.dirname(execPath), 'pm2')],
    nvmCandidates(home),
    prefix ? [path.join(prefix, 'bin', 'pm2')] : [],
    [
      path.join(home, '.npm-global', 'bin', 'pm2'),
      '/usr/local/lib/node_modules/pm2/bin/pm2',
      '/usr/local/bin/pm2',
      '/opt/homebrew/bin/pm2',
      '/usr/bin/pm2',
    ]
  );
}

function findPm2(explicit, env, home, execPath) {
  if (explicit) {
    if (isExecutableFile(explicit)) return explicit;
    throw new GateError('no-pm2', 'pm2 given with --pm2 is not an executable file: ' + explicit);
  }
  const found = pm2Candidates(env, home, execPath).filter(isExecutableFile)[0];
  if (!found) {
    throw new GateError('no-pm2', 'pm2 not found on PATH nor in the usual places; give its path with --pm2=');
  }
  return found;
}

// pm2 is a node script ("#!/usr/bin/env node"), and over ssh node is often not on PATH (nvm). So run the
// script with the node installed beside it (nvm, npm -g: <prefix>/bin/{node,pm2}), else with our own node.
function pm2Command(pm2, execPath) {
  let head = '';
  try {
    const fd = fs.openSync(pm2, 'r');
    const buffer = Buffer.alloc(128);
    head = buffer.toString('utf8', 0, fs.readSync(fd, buffer, 0, 128, 0));
    fs.closeSync(fd);
  } catch (err) {
    return { file: pm2, args: [] };
  }
  if (!/^#!.*\bnode\b/.test(head.split('\n')[0])) return { file: pm2, args: [] };
  const beside = path.join(path.dirname(pm2), 'node');
  return { file: isExecutableFile(beside) ? beside : execPath, args: [fs.realpathSync(pm2)] };
}

// Runs pm2 with an argument list (never a shell), output captured through pipes so nothing reaches a tty.
function runPm2(command, args, timeoutMs) {
  return new Promise(function (resolve, reject) {
    const child = childProcess.execFile(command.file, command.args.concat(args), {
      timeout: timeoutMs,
      killSignal: 'SIGKILL',
      maxBuffer: MAX_PM2_OUTPUT,
      encoding: 'utf8',
      windowsHide: true,
    }, function (err, stdout, stderr) {
      if (!err) return resolve({ code: 0, stdout: stdout, stderr: stderr });
      if (typeof err.code === 'number') return resolve({ code: err.code, stdout: stdout, stderr: stderr });
      if (err.killed) {
        return reject(new GateError('pm2-timeout', 'pm2 ' + args[0] + ' gave no answer in ' + timeoutMs / 1000 + ' s'));
      }
      if (err.signal) return reject(new GateError('pm2-failed', 'pm2 ' + args[0] + ' was ended by ' + err.signal));
      if (err.code === 'ENOENT' || err.code === 'EACCES') {
        return reject(new GateError('no-pm2', 'cannot run ' + command.file + ': ' + err.code));
      }
      reject(new GateError('pm2-failed', 'pm2 ' + args[0] + ': ' + err.message)); // e.g. too much output
    });
    child.stdin.end();
  });
}

// pm2 may print other lines (daemon start-up, "In-memory PM2 is out-of-date") before the JSON list.
function parseJlist(text) {
  const lines = text.split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i].trim();
    if (line[0] !== '[') continue;
    try {
      const list = JSON.parse(line);
      if (Array.isArray(list)) {
        return list.filter(function (app) { return app !== null && typeof app === 'object'; });
      }
    } catch (err) {
      // Not the list: keep looking at earlier lines.
    }
  }
  throw new GateError('pm2-failed', 'pm2 jlist printed no process list');
}

function numberOrNull(value) {
  return typeof value === 'number' && isFinite(value) ? value : null;
}

function stringOrNull(value) {
  return typeof value === 'string' ? value : null;
}

// Named fields only: pm2_env holds the whole environment of the process (tokens, passwords).
function pickProcess(app) {
  const env = app.pm2_env || {};
  const monit = app.monit || {};
  return {
    name: stringOrNull(app.name),
    pm_id: numberOrNull(app.pm_id),
    status: stringOrNull(env.status),
    pid: app.pid > 0 ? numberOrNull(app.pid) : null,
    started_at_ms: numberOrNull(env.pm_uptime),
    restarts: numberOrNull(env.restart_time),
    unstable_restarts: numberOrNull(env.unstable_restarts),
    memory_bytes: numberOrNull(monit.memory),
    cpu_percent: numberOrNull(monit.cpu),
    exit_code: numberOrNull(env.exit_code),
  };
}

function matchTarget(apps, target) {
  if (target.all) return apps;
  return apps.filter(function (app) {
    return target.name !== undefined ? app.name === target.name : app.pm_id === target.id;
  });
}

// ----------------------------------------------------------------------------------------- redaction

// Values of the variables whose names say secret, in the environment of any pm2 process (top level of
// pm2_env and its "env"), longest first so that a value containing another is hidden whole. Each line of
// a multi-line value (a PEM key) too, since logs are redacted line by line.
function environmentSecrets(apps) {
  const values = {};
  apps.forEach(function (app) {
    const env = app.pm2_env || {};
    [env, env.env || {}].forEach(function (vars) {
      Object.keys(vars).forEach(function (name) {
        if (!SECRET_NAME.test(name) || typeof vars[name] !== 'string') return;
        vars[name].split(/\r?\n/).forEach(function (value) {
          if (value.trim().length >= MIN_SECRET_CHARS && !NOT_SECRET.test(value)) values[value] = true;
        });
      });
    });
  });
  return Object.keys(values).sort(function (a, b) { return b.length - a.length; });
}

const SECRET_PATTERNS = [
  // Discord bot tokens (and JWTs): three base64url parts separated by dots.
  [/[A-Za-z0-9_-]{24,}\.[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{20,}/g, REDACTED],
  // Webhook URLs (Discord's .../api/webhooks/<id>/<token> and alike): the token.
  [/(\/webhooks?\/[^\s/]+\/)[^\s/?#"']+/gi, '$1' + REDACTED],
  // Passwords in URLs: scheme://user:PASSWORD@host.
  [/([a-z][a-z0-9+.-]*:\/\/[^\s:/@]*:)[^\s/]+@/gi, '$1' + REDACTED + '@'],
  // Authorization headers, whatever the scheme word.
  [/(authorization["']?\s*[:=]\s*["']?(?:bearer|basic|bot|token)?\s*)[^\s"',;]+/gi, '$1' + REDACTED],
  // NAME=value, NAME: value, "name": "value" where the name says secret (the words of SECRET_NAME).
  [/(["']?[\w.-]*(?:secret|token|pass|pwd|key|credential)[\w.-]*["']?\s*[:=]\s*)(\[REDACTED\]|"[^"]*"|'[^']*'|[^\s"',;&)}\]]+)/gi,
    function (match, lead, value) {
      const quote = value[0] === '"' || value[0] === "'" ? value[0] : '';
      return lead + quote + REDACTED + quote;
    }],
];

function redact(text, secrets) {
  let result = text;
  (secrets || []).forEach(function (secret) {
    result = result.split(secret).join(REDACTED);
  });
  SECRET_PATTERNS.forEach(function (pattern) {
    result = result.replace(pattern[0], pattern[1]);
  });
  return result;
}

// ANSI escapes and other control characters out, so a line reads the same on any terminal or in JSON.
function clean(text) {
  return text
    .replace(/\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)/g, '')
    .replace(/\x1b\[[0-9;?]*[ -/]*[@-~]/g, '')
    .replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '');
}

// Redact before shortening: a cut secret would no longer match its pattern.
function cleanLine(line, secrets) {
  return redact(clean(line), secrets).slice(0, MAX_LINE_CHARS);
}

function cleanLines(text, secrets) {
  return text.split('\n').map(function (line) { return cleanLine(line, secrets); })
    .filter(function (line) { return line.trim() !== ''; });
}

// The last `count` lines of a file, reading backwards from its end (pm2 logs can be gigabytes).
function tailLines(file, count) {
  let fd;
  try {
    // Non-blocking, so a FIFO configured as a log path cannot hang the gate.
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (err) {
    if (err.code === 'ENOENT') return [];
    throw new GateError('log-unreadable', 'cannot read ' + file + ': ' + err.code);
  }
  try {
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) return [];
    const chunks = [];
    let position = stat.size;
    let newlines = 0;
    while (position > 0 && newlines <= count && stat.size - position < MAX_TAIL_BYTES) {
      const length = Math.min(65536, position);
      position -= length;
      const chunk = Buffer.alloc(length);
      fs.readSync(fd, chunk, 0, length, position);
      chunks.unshift(chunk);
      for (let i = 0; i < length; i++) if (chunk[i] === 10) newlines++;
    }
    const lines = Buffer.concat(chunks).toString('utf8').split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    if (position > 0) lines.shift(); // started mid-line
    return lines.slice(-count);
  } finally {
    fs.closeSync(fd);
  }
}

// --------------------------------------------------------------------------------------------- verbs

// A line of JSON (an object, or a list of them): jlist's list carries every process's environment.
const JSON_LINE = /^\s*(\{|\[\s*[{\]"])/;

async function listApps(context) {
  const result = await runPm2(context.pm2(), ['jlist'], LIST_TIMEOUT_MS);
  if (result.code !== 0) {
    // pm2's words only: a list printed before it failed must not leave the server in the error.
    const output = cleanLines(result.stderr + result.stdout, []).filter(function (line) { return !JSON_LINE.test(line); });
    throw new GateError('pm2-failed', 'pm2 jlist exited ' + result.code + ': ' + lastLine(output));
  }
  return parseJlist(result.stdout);
}

function lastLine(lines) {
  return lines.length ? lines[lines.length - 1] : '(no output)';
}

async function appsFor(context, request) {
  const apps = await listApps(context);
  const matched = matchTarget(apps, request.target);
  if (matched.length === 0) {
    throw new GateError('unknown-process', 'pm2 has no process ' + JSON.stringify(request.args[0]));
  }
  return { apps: apps, matched: matched };
}

const HANDLERS = {
  hello: async function (context) {
    context.accept();
    return { protocols: [PROTOCOL], verbs: context.options.allow };
  },

  processes: async function (context) {
    context.accept();
    return { processes: (await listApps(context)).map(pickProcess) };
  },

  restart: async function (context, request) {
    const found = await appsFor(context, request);
    context.accept();
    // Ids, not the name: pm2 would also read a name as a namespace or an ecosystem file.
    const ids = request.target.all ? ['all'] : found.matched.map(function (app) { return String(app.pm_id); });
    const result = await runPm2(context.pm2(), ['restart'].concat(ids), context.options.restartTimeoutMs);
    // pm2 ends with a table of every process: the pids below say more, in fewer bytes.
    const output = cleanLines(result.stderr + result.stdout, environmentSecrets(found.apps))
      .filter(function (line) { return !/^[┌│├└]/.test(line); })
      .slice(-OUTPUT_TAIL_LINES);
    if (result.code !== 0) {
      throw new GateError('pm2-failed', 'pm2 restart exited ' + result.code + ': ' + lastLine(output),
        { exit_code: result.code, output: output });
    }
    const after = await listApps(context).catch(function () { return []; });
    return {
      target: request.args[0],
      exit_code: result.code,
      output: output,
      processes: found.matched.map(function (app) {
        const now = pickProcess(after.filter(function (a) { return a.pm_id === app.pm_id; })[0] || {});
        const was = pickProcess(app);
        return { name: was.name, pm_id: was.pm_id, pid_before: was.pid, pid_after: now.pid, status: now.status };
      }),
    };
  },

  logs: async function (context, request) {
    const found = await appsFor(context, request);
    context.accept();
    // Several instances (cluster mode) share a name: show the lowest id's log, and say which.
    const app = found.matched.sort(function (a, b) { return a.pm_id - b.pm_id; })[0];
    const env = app.pm2_env || {};
    const secrets = environmentSecrets(found.apps);
    const read = function (file) {
      if (typeof file !== 'string') return [];
      return tailLines(file, request.lines).map(function (line) { return cleanLine(line, secrets); });
    };
    return {
      name: stringOrNull(app.name),
      pm_id: numberOrNull(app.pm_id),
      lines: read(env.pm_out_log_path),
      // One file for both streams (pm2 --log, or -o and -e the same): its lines are in "lines".
      error_lines: env.pm_err_log_path === env.pm_out_log_path ? [] : read(env.pm_err_log_path),
    };
  },
};

// ----------------------------------------------------------------------------------------------- log

function clientAddress(env) {
  const parts = (env.SSH_CONNECTION || env.SSH_CLIENT || '').split(' ');
  return { client: parts[0] || null, client_port: Number(parts[1]) || null };
}

// One JSON object per line, appended. Returns null, or why the line could not be written.
function appendLog(file, entry) {
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    try {
      // One old generation, so a bot polling for years cannot fill the disk.
      if (fs.statSync(file).size > ROTATE_LOG_BYTES) fs.renameSync(file, file + '.1');
    } catch (err) {
      if (err.code !== 'ENOENT') throw err;
    }
    fs.appendFileSync(file, JSON.stringify(entry) + '\n', { mode: 0o600 });
    return null;
  } catch (err) {
    return 'cannot write ' + file + ': ' + err.message;
  }
}

// ---------------------------------------------------------------------------------------------- main

async function serve(command, argv, env, log) {
  const home = os.homedir();
  let pm2 = null;
  const context = {
    options: { log: defaultLogPath(env, home), allow: ['hello'], pm2: null },
    request: null,
    pm2: function () {
      if (!pm2) pm2 = pm2Command(findPm2(context.options.pm2, env, home, process.execPath), process.execPath);
      return pm2;
    },
    accept: function () {
      log(context.options.log, { event: 'accepted', verb: context.request.verb, args: context.request.args });
    },
  };
  try {
    context.options = loadOptions(argv, env, home);
    const request = context.request = parseCommand(command);
    if (context.options.allow.indexOf(request.verb) < 0) {
      throw new GateError('not-allowed', 'verb ' + JSON.stringify(request.verb) + ' is not allowed on this server',
        { verbs: context.options.allow });
    }
    Object.assign(request, checkArguments(request.verb, request.args));
    const answer = await HANDLERS[request.verb](context, request);
    log(context.options.log, { event: 'done', verb: request.verb, args: request.args, ok: true });
    return Object.assign({ gate: PROTOCOL, version: VERSION, ok: true, verb: request.verb }, answer);
  } catch (err) {
    const error = err instanceof GateError ? err : new GateError('internal', String(err && err.message || err));
    const request = context.request;
    const message = redact(error.message, []);
    const entry = { event: exitCodeFor(error.code) === 1 ? 'refused' : 'failed', error: error.code, message: message };
    if (request) {
      Object.assign(entry, { verb: request.verb, args: request.args });
    } else if (command !== undefined) {
      // What was refused, bounded, and escaped by JSON so that it cannot forge log lines.
      entry.command = redact(command.slice(0, 200), []);
      entry.command_bytes = Buffer.byteLength(command, 'utf8');
    }
    log(context.options.log, entry);
    return Object.assign({ gate: PROTOCOL, version: VERSION, ok: false, verb: request ? request.verb : null,
      error: error.code, message: message }, error.extra);
  }
}

function main() {
  const env = process.env;
  const started = Date.now();
  const client = clientAddress(env);
  const logErrors = [];
  const log = function (file, entry) {
    const problem = appendLog(file, Object.assign({ time: new Date().toISOString() }, client, entry,
      entry.event === 'done' ? { ms: Date.now() - started } : {}));
    if (problem && logErrors.indexOf(problem) < 0) logErrors.push(problem);
  };
  serve(env.SSH_ORIGINAL_COMMAND, process.argv.slice(2), env, log).then(function (reply) {
    if (logErrors.length) {
      // The verb still runs, but the bot and a person at the terminal are told the log is not written.
      reply.log_error = logErrors.join('; ');
      process.stderr.write(PROGRAM + ': ' + reply.log_error + '\n');
    }
    // The answer is always the last line of stdout, so it survives junk before it and a pty.
    process.stdout.write(JSON.stringify(reply) + '\n');
    process.exitCode = reply.ok ? 0 : exitCodeFor(reply.error);
  });
}

if (require.main === module) {
  main();
} else {
  module.exports = {
    VERSION: VERSION,
    PROTOCOL: PROTOCOL,
    VERBS: VERBS,
    GateError: GateError,
    exitCodeFor: exitCodeFor,
    parseCommand: parseCommand,
    checkArguments: checkArguments,
    parseArgs: parseArgs,
    readConfig: readConfig,
    loadOptions: loadOptions,
    defaultLogPath: defaultLogPath,
    pm2Candidates: pm2Candidates,
    findPm2: findPm2,
    pm2Command: pm2Command,
    runPm2: runPm2,
    parseJlist: parseJlist,
    pickProcess: pickProcess,
    matchTarget: matchTarget,
    environmentSecrets: environmentSecrets,
    redact: redact,
    clean: clean,
    tailLines: tailLines,
    clientAddress: clientAddress,
    appendLog: appendLog,
    serve: serve,
  };
}
