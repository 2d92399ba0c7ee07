"""vramguard's command-line interface (scripts/vramguard is its entry point).
Python 3 standard library only.

One module per concern:
  cli       the top-level parser, its help, main()
  run       `vramguard run`: run a command under the shim, judge it
  report    `vramguard report`: judge existing reports and journals
  suggest   `vramguard suggest`: the narrowest allowance for a run's violations
  top       `vramguard top`: the live view (discovery, figures, the lines drawn);
            top_screen draws it on a terminal (curses)
  reports   reading reports, journals and endpoint files; the aggregate
  render    text and Markdown output
  options   option values: grammars, defaults, flag > environment > default
  library   finding the shim library, checking that it preloads
  common    exit statuses, errors, the stderr voice, number formatting
A subcommand is the module of its name (add_parser, command) listed in
cli.COMMANDS; `timeline` will be added the same way.
"""
