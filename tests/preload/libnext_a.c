/* The definition that libnext_b's RTLD_NEXT lookup must find. */
__attribute__((visibility("default"))) const char *vg_probe(void);
const char *vg_probe(void)
{
    return "a";
}
