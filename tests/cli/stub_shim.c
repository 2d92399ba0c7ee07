/* Stand-in for libvramguard.so in the CLI tests (tests/cli/check_cli.c):
 * an empty shared object that ld.so can preload and that does nothing.
 * Build: cc -shared -fPIC -o stub_shim.so stub_shim.c */
int vramguard_cli_test_stub_shim = 1;
