#include "common/hostport.h"

#include <ctype.h>
#include <string.h>

#include "common/str.h"
#include "common/xalloc.h"

int hostport_parse(const char *text, const char *what, bool port0_ok, char **host, int *port,
		   struct err *e)
{
	const char *h = text, *colon, *close;
	unsigned long long p;
	size_t hlen;

	*host = NULL;
	if (text[0] == '[') {
		close = strchr(text, ']');
		if (!close || close == text + 1 || close[1] != ':')
			return err_set(e, ERR_USAGE, "%s '%s': want HOST:PORT, [IPV6]:PORT or :PORT",
				       what, text);
		h = text + 1;
		hlen = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(text, ':');
		if (!colon)
			return err_set(e, ERR_USAGE, "%s '%s': want HOST:PORT, [IPV6]:PORT or :PORT",
				       what, text);
		if (strchr(text, ':') != colon)
			return err_set(e, ERR_USAGE, "%s '%s': write an IPv6 address in brackets, "
				       "as [::1]:8080", what, text);
		hlen = (size_t)(colon - text);
	}
	for (size_t i = 0; i < hlen; i++)
		if (isspace((unsigned char)h[i]) || iscntrl((unsigned char)h[i]) || h[i] == '[' ||
		    h[i] == ']' || h[i] == '/')
			return err_set(e, ERR_USAGE, "%s '%s': the host has a character no address has",
				       what, text);
	if (str_to_u64(colon + 1, &p) || p > 65535 ||
	    (p == 0 && !port0_ok))
		return err_set(e, ERR_USAGE, "%s '%s': the port must be a number from %d to 65535",
			       what, text, port0_ok ? 0 : 1);
	*host = xstrndup(h, hlen);
	*port = (int)p;
	return 0;
}
