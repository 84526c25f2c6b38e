/* Functions ferry never calls, made compile errors (git's banned.h, curl's
 * checksrc list). CMake force-includes this file into every source, so it
 * first pulls in the headers that declare them: their include guards then
 * keep the macros below from reaching those declarations.
 *
 * Why: sprintf, vsprintf, strcpy and strcat write without a bound (use
 * snprintf, buf_printf, memcpy with a known length); strncpy leaves strings
 * unterminated; strtok keeps hidden state (strsep); system runs a shell
 * (proc_run); atoi and its kin cannot report a bad number (str_to_u64,
 * strtod with an end check); gmtime and localtime return shared storage
 * (gmtime_r, localtime_r). */
#ifndef FERRY_BANNED_H
#define FERRY_BANNED_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BANNED(func) sorry_##func##_is_a_banned_function

#undef sprintf
#define sprintf(...) BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) BANNED(vsprintf)
#undef strcpy
#define strcpy(...) BANNED(strcpy)
#undef strcat
#define strcat(...) BANNED(strcat)
#undef strncpy
#define strncpy(...) BANNED(strncpy)
#undef strtok
#define strtok(...) BANNED(strtok)
#undef system
#define system(...) BANNED(system)
#undef atoi
#define atoi(...) BANNED(atoi)
#undef atol
#define atol(...) BANNED(atol)
#undef atoll
#define atoll(...) BANNED(atoll)
#undef atof
#define atof(...) BANNED(atof)
#undef gmtime
#define gmtime(...) BANNED(gmtime)
#undef localtime
#define localtime(...) BANNED(localtime)

#endif
