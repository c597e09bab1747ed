-- expect: INSERT other than INSERT ... VALUES
--
-- PostgreSQL database dump
--

SET statement_timeout = 0;
SET lock_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET client_min_messages = warning;

CREATE TABLE public.t (
    id integer NOT NULL,
    note text
);

INSERT INTO public.t VALUES (1, 'a') ON CONFLICT (id) DO UPDATE SET note = 'b';
